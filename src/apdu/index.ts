export * from './command.js';
export * from './response.js';
export * from './cla.js';
