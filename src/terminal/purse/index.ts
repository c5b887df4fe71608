/** The e-money purse, terminal side: purchase and load with tear recovery, policy, balance inquiry. */
export * from './config.js';
export * from './currency.js';
export * from './errors.js';
export * from './protocol.js';
export * from './session.js';
export * from './policy.js';
export * from './recovery.js';
export * from './purchase.js';
export * from './load.js';
export * from './balance.js';
