/**
 * The applets the emulator can put on a card, by name. `hilt emulator --applets a,b` and the
 * jCardSim `Class` mapping use these names.
 */
import type { Applet } from './os/applet.js';
import { DiagnosticApplet, DIAGNOSTIC_AID } from './applets/diagnostic.js';
import { PurseApplet, PURSE_AID } from './applets/purse.js';

export interface CatalogEntry {
  /** The AID the applet is installed under unless the configuration says otherwise. */
  aid: Uint8Array;
  description: string;
  create(): Applet;
}

export const APPLET_CATALOG: Readonly<Record<string, CatalogEntry>> = {
  diagnostic: {
    aid: DIAGNOSTIC_AID,
    description: 'transport test applet: cases 1-4, extended length, 61xx, 6Cxx, chaining, slow command',
    create: () => new DiagnosticApplet(),
  },
  'emoney-purse': {
    aid: PURSE_AID,
    description: 'e-money stored-value purse: balance, limits, transaction counter, cyclic log, certified debits, issuer-authorized loads',
    create: () => new PurseApplet(),
  },
};

export const APPLET_NAMES: readonly string[] = Object.keys(APPLET_CATALOG);
