/** The terminal's durable journal (SQLite): transactions, reader sequence, coherence, limits, negative list, outbox. */
export * from './db.js';
export * from './journal.js';
