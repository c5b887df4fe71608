import type { RegisterCommand } from './types.js';
import { CommandApdu } from '../../apdu/command.js';
import { toHex } from '../../util/bytes.js';

export const registerDemo: RegisterCommand = (program, ctx) => {
  program
    .command('demo')
    .description('run the main job on the embedded defaults (no hardware needed)')
    .option('--json', 'print one JSON document')
    .action(() => {
      const select = new CommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: Uint8Array.of(0xa0, 0, 0, 0, 3), ne: 256 });
      ctx.io.out(`SELECT ${toHex(select.encode())} case ${select.case}`);
    });
};
