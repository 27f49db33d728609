import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Plugin } from 'vite';

export interface PiflowModelsOptions {
  /** Folder holding the models (the repository's `models/`, or a development folder). */
  directory: string;
  /** Model folders inside it that the app loads, each with `model.json` and `weights.bin`. */
  models: readonly string[];
  /** URL path under which they are served and copied into the build (default 'models'). */
  urlPath?: string;
}

const FILES = ['model.json', 'weights.bin'] as const;

function missingFiles(options: PiflowModelsOptions): string[] {
  return options.models.flatMap((model) =>
    FILES.map((file) => path.join(options.directory, model, file)).filter((file) => !existsSync(file)),
  );
}

/**
 * Serves the demo's models from a folder outside the app (`vite` dev server) and copies them into the build
 * (`vite build`, hence `vite preview` and any static host) under `/<urlPath>/`. Only the listed model folders
 * are served or copied; a missing file stops the build with a message saying where models come from.
 */
export function piflowModels(options: PiflowModelsOptions): Plugin {
  const urlPath = (options.urlPath ?? 'models').replace(/^\/+|\/+$/g, '');
  const allowed = new Set(options.models.flatMap((model) => FILES.map((file) => `${model}/${file}`)));
  return {
    name: 'piflow-models',
    buildStart() {
      const missing = missingFiles(options);
      if (missing.length > 0) {
        this.error(
          `piflow-models: missing ${missing.join(', ')}. The demo loads the 2-D models shipped in the ` +
            "repository's models/ folder; for development without them, run `pnpm train-dev-models` in " +
            'apps/web and start Vite with PIFLOW_MODELS_DIR=.dev-models.',
        );
      }
    },
    configureServer(server) {
      server.middlewares.use(`/${urlPath}/`, (request, response, next) => {
        const relative = decodeURIComponent((request.url ?? '').split('?')[0]!.replace(/^\/+/, ''));
        if (!allowed.has(relative)) return next();
        const file = path.join(options.directory, relative);
        if (!existsSync(file)) return next();
        response.setHeader(
          'content-type',
          file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        );
        response.setHeader('content-length', String(statSync(file).size));
        createReadStream(file).pipe(response);
      });
    },
    generateBundle() {
      for (const relative of allowed) {
        this.emitFile({
          type: 'asset',
          fileName: `${urlPath}/${relative}`,
          source: new Uint8Array(readFileSync(path.join(options.directory, relative))),
        });
      }
    },
  };
}
