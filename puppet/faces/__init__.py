"""Faces: tracking (68 iBUG landmarks), the crop, a clip's evenly spaced frames tracked and cropped, the
sketch rasteriser, image conversion, the One Euro filter, head pose on landmarks and the piecewise-affine
warp. Shared by every later stage."""
