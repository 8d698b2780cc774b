/** Latent transforms and PNG output for decoded images (no compiler code). */
export * from './latents';
export * from './png';
