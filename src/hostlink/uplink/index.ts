/** The terminal's uplink: sign-on, store-and-forward of the journal's outbox, negative list, load authorization and reversal, key change, reconciliation. */
export * from './config.js';
export * from './contract.js';
export * from './errors.js';
export * from './store.js';
export * from './identity.js';
export * from './session.js';
export * from './link.js';
export * from './records.js';
export * from './forwarder.js';
export * from './negative-sync.js';
export * from './load.js';
export * from './keys.js';
export * from './key-change.js';
export * from './reversal.js';
export * from './reconcile.js';
export * from './uplink.js';
