export * from './command.js';
export * from './response.js';
export * from './cla.js';
export * from './sw.js';
export * from './ins.js';
export * from './describe.js';
