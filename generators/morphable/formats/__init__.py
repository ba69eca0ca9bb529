"""Readers for the 3D morphable model files users bring: BFM 2009, BFM 2017, FLAME, LSFM and eos.

None of these models can be downloaded by the project (each has its own licence and registration), so
every reader converts a file the user points at into the internal schema of
`generators.morphable.model` (millimetres, identity basis scaled by standard deviation, colours in
[0, 1], 0-based counter-clockwise triangles). Each is registered with `register_format`, so
`load_model(path, format=NAME)` (or the file's name alone, where a pattern below matches) reads it.

What every reader does the same way:
- required fields are checked first; a missing or malformed one raises `UserError` naming the file
  and the field, and saying what to do;
- the mean shape is recentred at its bounding-box centre (bases are differences, unaffected);
- triangles are made counter-clockwise seen from outside (`_outward_triangles`): for an open face mask
  (BFM, LSFM) the summed face normal must point to +z (out of the face, the schema's axis); for a
  wrap-around surface whose summed normal is small against its area (FLAME's whole head) the normals
  must point away from the bounding-box centre on balance. The winding is flipped if not, and logged;
- `name` is "<format>-<file stem>"; `landmarks_68` is None unless the file carries them (only eos
  files can, as ibug/Multi-PIE ids "1".."68");
- a mean face whose largest bounding-box side is not 50-500 mm is logged as a warning (wrong units?).

One module per family, each documenting its units and layouts: `basel` (bfm2009, bfm2017), `flame`,
`lsfm`, `eos`; `common` holds what they share. Importing this package registers all five.
"""
from generators.morphable.formats import basel, eos, flame, lsfm  # noqa: F401  (register the formats)
