import { describe, it, expect } from 'vitest';
import { DiagnosticApplet, DIAGNOSTIC_AID, DIAGNOSTIC_NAME } from '../../../emulator/applets/diagnostic.js';
import { makeCard, replay, specBlocks } from './helpers.js';

describe('applets-spec/card-os.md examples', () => {
  const blocks = specBlocks('applets-spec/card-os.md');

  it('has example blocks', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
  });

  blocks.forEach((steps, i) => {
    it(`block ${i + 1} (${steps[0]?.line})`, async () => {
      const { card } = makeCard([{ aid: DIAGNOSTIC_AID, name: DIAGNOSTIC_NAME, applet: new DiagnosticApplet() }]);
      await replay(card, steps);
    });
  });
});
