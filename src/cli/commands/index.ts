/** The list of commands, in the order `hilt --help` shows them. One file per command. */
import type { RegisterCommand } from './types.js';
import { registerDemo } from './demo.js';

export const commands: RegisterCommand[] = [registerDemo];
