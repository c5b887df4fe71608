/** The list of commands, in the order `hilt --help` shows them. One file per command. */
import type { RegisterCommand } from './types.js';
import { registerApdu } from './apdu.js';
import { registerEmulator } from './emulator.js';
import { registerDemo } from './demo.js';

export const commands: RegisterCommand[] = [registerApdu, registerEmulator, registerDemo];
