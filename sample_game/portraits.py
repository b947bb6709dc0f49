"""NPC portraits drawn in code, one expression per emotion label, and the small emotion icons and colours the
speech bubbles use."""

from __future__ import annotations

from types import MappingProxyType

from PIL import Image, ImageDraw

from npc_runtime.emotion import EMOTIONS, NEUTRAL
from sample_game.pen import Color, Pen
from sample_game.sprites import OUTFITS, PLAYER_OUTFIT, SKIN, Outfit

__all__ = ["EMOTION_COLORS", "draw_face", "draw_portrait", "draw_emotion_icon"]

INK: Color = (28, 22, 20)

#: The colour of each emotion label in bubbles, icons and the history log.
EMOTION_COLORS: MappingProxyType[str, Color] = MappingProxyType(
    {
        "anger": (214, 58, 48),
        "disgust": (112, 160, 58),
        "fear": (150, 92, 200),
        "joy": (240, 188, 36),
        "sadness": (70, 120, 210),
        "surprise": (250, 138, 40),
        "neutral": (165, 165, 170),
    }
)
if set(EMOTION_COLORS) != set(EMOTIONS):
    raise RuntimeError("portraits.py and npc_runtime.emotion.EMOTIONS disagree")

# Face tints per emotion: angry faces flush, frightened ones pale, disgusted ones go a little green.
_FACE_TINT: dict[str, tuple[int, int, int]] = {"anger": (18, -20, -20), "fear": (-20, -8, 10), "disgust": (-12, 6, -18)}


def _tinted(color: Color, emotion: str) -> Color:
    dr, dg, db = _FACE_TINT.get(emotion, (0, 0, 0))
    return (min(255, max(0, color[0] + dr)), min(255, max(0, color[1] + dg)), min(255, max(0, color[2] + db)))


def draw_face(p: Pen, emotion: str) -> None:
    """Eyes, brows and mouth for ``emotion`` on a face centred at the pen's anchor, about 40 units wide."""
    if emotion not in EMOTION_COLORS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
    wide = emotion in ("fear", "surprise")
    for side in (-1, 1):
        ex = 9 * side
        if emotion == "joy":
            p.line([(ex - 4, -2), (ex, -6), (ex + 4, -2)], INK, 2)
        elif wide:
            p.circle(ex, -3, 5, (255, 255, 255), INK)
            p.circle(ex, -3, 1.8, INK)
        else:
            p.circle(ex, -3, 2.4, INK)
        # Brows: (outer y, inner y) relative to the eye.
        outer, inner = {
            "anger": (-11, -7),
            "sadness": (-8, -12),
            "fear": (-11, -14),
            "surprise": (-14, -14),
            "disgust": (-10, -8) if side < 0 else (-12, -12),
        }.get(emotion, (-10, -10))
        p.line([(ex + 5 * side, outer), (ex - 4 * side, inner)], INK, 2)
    if emotion == "joy":
        p.polygon([(-9, 8), (9, 8), (6, 14), (0, 16), (-6, 14)], (150, 40, 40), INK)
        for side in (-1, 1):
            p.circle(15 * side, 5, 3, (240, 140, 130))
    elif emotion == "sadness":
        p.line([(-7, 14), (0, 10), (7, 14)], INK, 2)
        p.ellipse(8, 2, 12, 9, (90, 170, 240))
    elif emotion == "anger":
        p.rect(-8, 9, 8, 13, (250, 250, 250), INK)
        p.line([(-8, 11), (8, 11)], INK, 1)
    elif emotion == "fear":
        p.line([(-7, 12), (-3, 10), (0, 12), (3, 10), (7, 12)], INK, 2)
        p.ellipse(14, -12, 18, -5, (150, 200, 250))
    elif emotion == "surprise":
        p.ellipse(-4, 7, 4, 16, (120, 30, 30), INK)
    elif emotion == "disgust":
        p.line([(-8, 12), (-2, 10), (3, 13), (8, 9)], INK, 2)
        p.line([(-3, 3), (0, 1), (3, 3)], INK, 1)
    else:
        p.line([(-6, 12), (6, 12)], INK, 2)


def _hair_and_hat(p: Pen, outfit: Outfit) -> None:
    p.ellipse(-21, -30, 21, -8, outfit.hair)
    if outfit.accessory == "hat":
        p.rect(-28, -27, 28, -21, (70, 40, 20), INK)
        p.rect(-16, -44, 16, -24, (70, 40, 20), INK)
    elif outfit.accessory == "spear":
        p.ellipse(-24, -36, 24, -10, (150, 155, 165), INK)
        p.rect(-3, -36, 3, -14, (120, 125, 135))
    elif outfit.accessory == "feather":
        p.ellipse(-24, -34, 24, -16, (120, 40, 140), INK)
        p.line([(10, -28), (26, -48)], (250, 250, 250), 4)


def draw_portrait(persona: str, emotion: str = NEUTRAL, size: int = 96) -> Image.Image:
    """A square RGB portrait of ``persona`` (``"player"`` for the hero) wearing ``emotion``."""
    if persona == "player":
        outfit = PLAYER_OUTFIT
    elif persona in OUTFITS:
        outfit = OUTFITS[persona]
    else:
        raise ValueError(f"unknown persona {persona!r}")
    if emotion not in EMOTION_COLORS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    backdrop = tuple(int(0.35 * c + 0.65 * 235) for c in EMOTION_COLORS[emotion])
    image = Image.new("RGB", (size, size), backdrop)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image)
    p = Pen(draw, size / 2, size * 0.5, size / 96)
    p.ellipse(-40, 28, 40, 80, outfit.tunic, INK)
    p.rect(-7, 18, 7, 32, SKIN, INK)
    p.ellipse(-22, -26, 22, 24, _tinted(SKIN, emotion), INK)
    _hair_and_hat(p, outfit)
    draw_face(p, emotion)
    draw.rectangle((0, 0, size - 1, size - 1), outline=EMOTION_COLORS[emotion], width=max(2, size // 24))
    return image


def draw_emotion_icon(emotion: str, size: int = 20) -> Image.Image:
    """A round icon in the emotion's colour with its face, for bubbles and the history log (RGBA)."""
    if emotion not in EMOTION_COLORS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
    image = Image.new("RGBA", (size * 4, size * 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((2, 2, size * 4 - 3, size * 4 - 3), fill=EMOTION_COLORS[emotion] + (255,), outline=INK + (255,),
                 width=4)
    draw_face(Pen(draw, size * 2, size * 2, size * 4 / 44), emotion)
    return image.resize((size, size), Image.Resampling.LANCZOS)
