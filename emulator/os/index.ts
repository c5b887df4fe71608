export * from './applet.js';
export * from './card-os.js';
export * from './scoped-store.js';
export * from './sw.js';
export * from './card-data.js';
export * from './security-domain.js';
