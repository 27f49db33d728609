/**
 * Where the page fetches its models: `<MODELS_BASE_URL>checkerboard/{teacher,gm-1,gm-2,gm-4}/` and
 * `<MODELS_BASE_URL>{mnist,fashion-mnist}/gm-4/` (the image view's class-conditional students). By default the
 * folder the Vite plugin serves and copies into the build (see vite.config.ts); set VITE_PIFLOW_MODELS_URL at
 * build time to load them from elsewhere.
 */
export const MODELS_BASE_URL: string =
  import.meta.env.VITE_PIFLOW_MODELS_URL || `${import.meta.env.BASE_URL}models/`;

/** Number of noise samples whose trajectories the trajectory view draws. */
export const TRAJECTORY_COUNT = 48;

/** The region both canvases show, [min, max]². */
export const VIEW = { min: -3, max: 3 } as const;
