/** The list of commands, in the order `hilt --help` shows them. One file per command. */
import type { RegisterCommand } from './types.js';
import { registerReaders } from './readers.js';
import { registerMonitor } from './monitor.js';
import { registerSend } from './send.js';
import { registerScript } from './script.js';
import { registerAuth } from './auth.js';
import { registerAtr } from './atr.js';
import { registerApdu } from './apdu.js';
import { registerTlv } from './tlv.js';
import { registerEmulator } from './emulator.js';
import { registerJournal } from './journal.js';
import { registerPay } from './pay.js';
import { registerLoad } from './load.js';
import { registerBalance } from './balance.js';
import { registerHosts } from './hosts.js';
import { registerUplink } from './uplink.js';
import { registerDemo } from './demo.js';

export const commands: RegisterCommand[] = [
  registerReaders,
  registerMonitor,
  registerSend,
  registerScript,
  registerAuth,
  registerAtr,
  registerApdu,
  registerTlv,
  registerEmulator,
  registerPay,
  registerLoad,
  registerBalance,
  registerHosts,
  registerUplink,
  registerJournal,
  registerDemo,
];
