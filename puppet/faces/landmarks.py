"""The one landmark scheme: 68-point iBUG (300-W / dlib) layout, and mediapipe's 478 points mapped onto it.

iBUG indices (0-based), in IMAGE terms for an unmirrored frontal face:
  jaw 0-16 (0 = image-left, at eye-corner height; 8 = chin; 16 = image-right),
  brows 17-21 (image-left brow = the subject's right brow, outer -> inner) and 22-26 (inner -> outer),
  nose bridge 27-30 (top -> tip), lower nose 31-35 (image-left nostril wing -> subnasale 33 -> right wing),
  eyes 36-41 (image-left eye = subject's right: outer corner 36, upper lid 37-38, inner corner 39, lower lid
  40-41) and 42-47 (inner corner 42, upper lid 43-44, outer corner 45, lower lid 46-47), both clockwise,
  outer lips 48-59 (image-left corner 48, upper lip 49-53, right corner 54, lower lip 55-59),
  inner lips 60-67 (left corner 60, upper 61-63, right corner 64, lower 65-67).

mediapipe's face mesh is likewise in subject terms ("right eye" 33/133 appears on the image left), so the
subject's right side of the mesh goes to the image-left iBUG indices.
"""

from __future__ import annotations

import numpy as np

# name -> (iBUG indices in drawing order, closed polyline). The order of the dict is the sketch's draw order.
PARTS: dict[str, tuple[list[int], bool]] = {
    "jaw": (list(range(0, 17)), False),
    "right_brow": (list(range(17, 22)), False),  # subject's right = image left
    "left_brow": (list(range(22, 27)), False),
    "nose_bridge": (list(range(27, 31)), False),
    "nose_lower": (list(range(31, 36)), False),  # nostrils: wing, subnasale, wing
    "right_eye": (list(range(36, 42)), True),
    "left_eye": (list(range(42, 48)), True),
    "outer_lips": (list(range(48, 60)), True),
    "inner_lips": (list(range(60, 68)), True),
}

N_POINTS = 68

# Left/right mirror pairs of iBUG indices (for flips and symmetry checks); midline points map to themselves.
FLIP = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # bridge
    + [35, 34, 33, 32, 31]  # lower nose
    + [45, 44, 43, 42, 47, 46]  # eye 36-41 <-> 42-47 (outer<->outer, upper<->upper, inner<->inner)
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lips
    dtype=np.int64,
)

# mediapipe FaceMesh (468 mesh points + 10 iris points with refine_landmarks) -> iBUG 68.
# Each iBUG point is the mean of the listed mediapipe points. Index facts follow mediapipe's canonical face
# model (face_mesh_connections.py: FACEMESH_FACE_OVAL, _LIPS, _LEFT/RIGHT_EYE, _EYEBROW) and were checked by
# eye on grace_hopper.jpg, astronaut.png, mona_lisa.jpg and einstein.jpg (see tests/test_track.py).
# mediapipe's "right" = the subject's right = image left = the lower iBUG index of each pair.
MP_TO_IBUG: list[tuple[int, ...]] = [
    # jaw 0-16: mediapipe's face oval from the subject's right ear (127) down to the chin (152) and up to the
    # left ear (356) has 21 points; iBUG's 17 are spaced evenly along it, so 3/4 and 12/13 (at the jaw angle,
    # where the oval's points are denser) average two neighbours.
    (127,),  # 0  beside the right ear, at eye-corner height (oval point level with the outer canthus)
    (234,),  # 1  widest point of the right cheek
    (93,),  # 2
    (132, 58),  # 3  between the two oval points above the jaw angle
    (58, 172),  # 4  jaw angle (gonion)
    (136,),  # 5
    (150,),  # 6
    (176,),  # 7  (oval order 150, 149, 176, 148, 152: 176 is half way between 6 and the chin)
    (152,),  # 8  chin (menton), the oval's lowest midline point
    (400,),  # 9  mirror of 176
    (379,),  # 10 mirror of 150
    (365,),  # 11 mirror of 136
    (397, 288),  # 12 mirror of (172, 58)
    (288, 361),  # 13 mirror of (58, 132)
    (323,),  # 14 mirror of 93
    (454,),  # 15 mirror of 234
    (356,),  # 16 mirror of 127
    # brows: the upper edge of each brow (mediapipe's brow has an upper row 70,63,105,66,107 and a lower row
    # 46,53,52,65,55; 300-W annotators traced the upper edge).
    (70,),  # 17 right brow, outer end
    (63,),  # 18
    (105,),  # 19
    (66,),  # 20
    (107,),  # 21 right brow, inner end
    (336,),  # 22 left brow, inner end (mirror of 107)
    (296,),  # 23 mirror of 66
    (334,),  # 24 mirror of 105
    (293,),  # 25 mirror of 63
    (300,),  # 26 left brow, outer end (mirror of 70)
    # nose bridge: mediapipe's midline 168, 6, 197, 195, 5, 4, 1 (top to tip); iBUG spaces 4 points evenly
    # from between the eyes (168) to the tip (4, the highest point of the tip's round; 1 sits lower, on the
    # tip's underside in frontal views).
    (168,),  # 27 between the eyes
    (6, 197),  # 28
    (195, 5),  # 29
    (4,),  # 30 nose tip
    # lower nose: the nostrils' lower edge; 98/327 are where the wings meet the cheek, 97/326 the nostril
    # bottoms, 2 the subnasale (where the columella meets the upper lip).
    (98,),  # 31
    (97,),  # 32
    (2,),  # 33 subnasale
    (326,),  # 34
    (327,),  # 35
    # eyes: the lid contour. Mediapipe's upper right lid is 33,246,161,160,159,158,157,173,133 and the lower
    # 33,7,163,144,145,153,154,155,133; iBUG's lid points sit at a third and two thirds of each lid.
    (33,),  # 36 right eye outer corner
    (160,),  # 37 upper lid, outer third
    (158,),  # 38 upper lid, inner third
    (133,),  # 39 right eye inner corner
    (153,),  # 40 lower lid, inner third
    (144,),  # 41 lower lid, outer third
    (362,),  # 42 left eye inner corner (mirror of 133)
    (385,),  # 43 mirror of 158
    (387,),  # 44 mirror of 160
    (263,),  # 45 left eye outer corner (mirror of 33)
    (373,),  # 46 mirror of 144
    (380,),  # 47 mirror of 153
    # outer lips: mediapipe's outer upper lip 61,185,40,39,37,0,267,269,270,409,291 and lower
    # 291,375,321,405,314,17,84,181,91,146,61.
    (61,),  # 48 right mouth corner (image left)
    (40,),  # 49
    (37,),  # 50 peak of the cupid's bow
    (0,),  # 51 upper lip top, midline
    (267,),  # 52 other cupid's bow peak
    (270,),  # 53
    (291,),  # 54 left mouth corner (image right)
    (321,),  # 55
    (314,),  # 56
    (17,),  # 57 lower lip bottom, midline
    (84,),  # 58
    (91,),  # 59
    # inner lips: mediapipe's inner upper lip 78,191,80,81,82,13,312,311,310,415,308 and lower
    # 78,95,88,178,87,14,317,402,318,324,308; iBUG's 61/63 and 65/67 sit half way between corner and middle.
    (78,),  # 60 right inner corner
    (80, 81),  # 61
    (13,),  # 62 upper inner lip, midline
    (311, 310),  # 63
    (308,),  # 64 left inner corner
    (318, 402),  # 65
    (14,),  # 66 lower inner lip, midline
    (178, 88),  # 67
]
assert len(MP_TO_IBUG) == N_POINTS

# As a (68, 478) averaging matrix: ibug = W @ mp478, one small matmul per frame.
_MP_WEIGHTS = np.zeros((N_POINTS, 478), dtype=np.float32)
for _i, _src in enumerate(MP_TO_IBUG):
    _MP_WEIGHTS[_i, list(_src)] = 1.0 / len(_src)


def mediapipe_to_ibug(points: np.ndarray) -> np.ndarray:
    """mediapipe points (478 or 468, 2+) -> iBUG (68, 2) float32, same units."""
    pts = np.asarray(points, dtype=np.float32)[:, :2]
    return _MP_WEIGHTS[:, : pts.shape[0]] @ pts
