/** The list of commands, in the order `hilt --help` shows them. One file per command. */
import type { RegisterCommand } from './types.js';
import { registerApdu } from './apdu.js';
import { registerAtr } from './atr.js';
import { registerTlv } from './tlv.js';
import { registerEmulator } from './emulator.js';
import { registerJournal } from './journal.js';
import { registerDemo } from './demo.js';

export const commands: RegisterCommand[] = [registerAtr, registerApdu, registerTlv, registerEmulator, registerJournal, registerDemo];
