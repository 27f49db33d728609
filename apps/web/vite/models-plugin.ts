import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Plugin } from 'vite';

export interface PiflowModelsOptions {
  /** Folder holding the models (the repository's `models/`, or a development folder). */
  directory: string;
  /** Model folders inside it that the app loads, each with `model.json` and its weights file. */
  models: readonly string[];
  /**
   * Model folders that are served and copied when they are there, and only warned about when they are not
   * (a development folder without them: the page then fails only in the view that needs them).
   */
  optionalModels?: readonly string[];
  /** URL path under which they are served and copied into the build (default 'models'). */
  urlPath?: string;
}

/**
 * A model folder's files: `model.json` and the weights file it lists (`weightsManifest` paths:
 * `model.safetensors`), or `weights.bin` for folders written before model files listed their weights.
 */
function modelFiles(directory: string, model: string): string[] {
  try {
    const json = JSON.parse(readFileSync(path.join(directory, model, 'model.json'), 'utf8')) as {
      weightsManifest?: { paths: string[] }[];
    };
    const paths = json.weightsManifest?.flatMap((group) => group.paths) ?? ['weights.bin'];
    return ['model.json', ...paths.map((p) => path.basename(p))];
  } catch {
    return ['model.json', 'weights.bin'];
  }
}

function missingFiles(directory: string, models: readonly string[]): string[] {
  return models.flatMap((model) =>
    modelFiles(directory, model)
      .map((file) => path.join(directory, model, file))
      .filter((file) => !existsSync(file)),
  );
}

/**
 * Serves the demo's models from a folder outside the app (`vite` dev server) and copies them into the build
 * (`vite build`, hence `vite preview` and any static host) under `/<urlPath>/`. Only the listed model folders
 * are served or copied; a missing file stops the build with a message saying where models come from (an
 * optional model that is missing is left out with a warning).
 */
export function piflowModels(options: PiflowModelsOptions): Plugin {
  const urlPath = (options.urlPath ?? 'models').replace(/^\/+|\/+$/g, '');
  const optional = options.optionalModels ?? [];
  const present = optional.filter((model) => missingFiles(options.directory, [model]).length === 0);
  const allowed = new Set(
    [...options.models, ...present].flatMap((model) =>
      modelFiles(options.directory, model).map((file) => `${model}/${file}`),
    ),
  );
  return {
    name: 'piflow-models',
    buildStart() {
      const missing = missingFiles(options.directory, options.models);
      if (missing.length > 0) {
        this.error(
          `piflow-models: missing ${missing.join(', ')}. The demo loads the models shipped in the ` +
            "repository's models/ folder; for development without them, run `pnpm train-dev-models` in " +
            'apps/web and start Vite with PIFLOW_MODELS_DIR=.dev-models.',
        );
      }
      const absent = optional.filter((model) => !present.includes(model));
      if (absent.length > 0) {
        this.warn(
          `piflow-models: ${absent.map((m) => path.join(options.directory, m))} missing: left out, so the ` +
            'view that loads it will show an error.',
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
