// Wall layouts: a CSS grid of `columns` × `columns` cells; `big` tiles span
// `span` × `span` cells.  Small tiles of dense layouts play the sub stream.
export const LAYOUTS = {
  "1": { columns: 1, tiles: 1, big: 0, span: 1, sub: false },
  "2x2": { columns: 2, tiles: 4, big: 0, span: 1, sub: false },
  "3x3": { columns: 3, tiles: 9, big: 0, span: 1, sub: true },
  "4x4": { columns: 4, tiles: 16, big: 0, span: 1, sub: true },
  "1+5": { columns: 3, tiles: 6, big: 1, span: 2, sub: true },
  "1+7": { columns: 4, tiles: 8, big: 1, span: 3, sub: true },
};

export const DEFAULT_LAYOUT = "2x2";

// The stream a tile plays: main for big tiles, enlarged tiles and sparse layouts.
export function streamFor(layout, index, enlarged) {
  const spec = LAYOUTS[layout];
  if (enlarged || !spec.sub || index < spec.big) return "main";
  return "sub";
}
