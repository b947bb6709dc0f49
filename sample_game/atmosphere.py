"""Time of day and weather applied to a drawn picture: lighting tints, glowing lights, rain, fog and snow.

Each time of day has its own tint (warm morning, bright noon, orange evening, blue night with glowing windows
and fires) and each weather its own overlay, strong enough to read after a resize to 64×64.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from sample_game.landmarks import Light
from sample_game.world import TIMES_OF_DAY, WEATHERS

__all__ = ["apply_time", "apply_weather"]

# Per time: multiplicative tint (R, G, B), additive haze, and how strongly lights glow (0..1).
_TINT: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "morning": ((0.92, 0.8, 0.74), (0.14, 0.07, 0.1), 0.0),
    "noon": ((1.1, 1.1, 1.06), (0.03, 0.03, 0.02), 0.0),
    "evening": ((0.95, 0.6, 0.42), (0.06, 0.0, 0.04), 0.55),
    "night": ((0.36, 0.42, 0.72), (0.0, 0.01, 0.06), 1.0),
}
_FOG: dict[str, tuple[float, float, float]] = {
    "morning": (0.86, 0.84, 0.84),
    "noon": (0.88, 0.89, 0.9),
    "evening": (0.62, 0.55, 0.55),
    "night": (0.32, 0.35, 0.45),
}
if set(_TINT) != set(TIMES_OF_DAY) or set(_FOG) != set(TIMES_OF_DAY):
    raise RuntimeError("atmosphere.py and world.TIMES_OF_DAY disagree")


def apply_time(pixels: np.ndarray, time_of_day: str, lights: Iterable[Light] = ()) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8 lit for ``time_of_day``; ``lights`` glow in the evening and at night."""
    if time_of_day not in _TINT:
        raise ValueError(f"unknown time of day {time_of_day!r}; expected one of {TIMES_OF_DAY}")
    tint, haze, glow = _TINT[time_of_day]
    base = pixels.astype(np.float32) / 255.0
    lit = base * np.asarray(tint, dtype=np.float32) + np.asarray(haze, dtype=np.float32)
    if glow > 0:
        height, width = pixels.shape[:2]
        for light in lights:
            r = light.radius
            x0, x1 = max(0, int(light.x - r)), min(width, int(light.x + r) + 1)
            y0, y1 = max(0, int(light.y - r)), min(height, int(light.y + r) + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            ys, xs = np.mgrid[y0:y1, x0:x1]
            falloff = np.exp(-(((xs - light.x) ** 2 + (ys - light.y) ** 2) / (0.35 * r * r)))  # (h, w)
            color = np.asarray(light.color, dtype=np.float32) / 255.0
            # Light reveals the surface's own colour, plus a little coloured glow.
            patch = lit[y0:y1, x0:x1]
            lift = falloff[..., None] * glow
            lit[y0:y1, x0:x1] = patch + lift * (base[y0:y1, x0:x1] * color * 0.9 + color * 0.25)
    return (np.clip(lit, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def apply_weather(pixels: np.ndarray, weather: str, time_of_day: str, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8 with ``weather`` drawn over it; ``rng`` places drops and flakes."""
    if weather not in WEATHERS:
        raise ValueError(f"unknown weather {weather!r}; expected one of {WEATHERS}")
    if time_of_day not in _FOG:
        raise ValueError(f"unknown time of day {time_of_day!r}; expected one of {TIMES_OF_DAY}")
    if weather == "clear":
        return pixels.copy()
    height, width = pixels.shape[:2]
    area = height * width
    if weather == "fog":
        # A veil of the sky's colour whose thickness varies smoothly across the picture.
        coarse = rng.uniform(0.32, 0.55, size=(max(2, height // 30), max(2, width // 30)))
        veil = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height),
                                                                                  Image.Resampling.BICUBIC))
        alpha = (veil.astype(np.float32) / 255.0)[..., None]  # (H, W, 1)
        fog = np.asarray(_FOG[time_of_day], dtype=np.float32) * 255.0
        mixed = pixels.astype(np.float32) * (1 - alpha) + fog * alpha
        return (mixed + 0.5).astype(np.uint8)
    bright = time_of_day != "night"
    out = pixels.astype(np.float32)
    if weather == "rain":
        out = out * 0.8 + np.asarray([20.0, 24.0, 34.0], dtype=np.float32)
        color = (190, 200, 230) if bright else (130, 140, 180)
        count = area // 75
        # Slanted streaks 6-10 px long: one pixel per row of each streak.
        x = rng.uniform(-8, width, size=count)
        y = rng.uniform(-10, height, size=count)
        length = rng.uniform(6, 10, size=count)
        steps = np.arange(10, dtype=np.float32)  # (10,)
        ys = y[:, None] + steps[None, :]  # (count, 10)
        xs = x[:, None] + 0.35 * steps[None, :]
        keep = steps[None, :] < length[:, None]
    else:  # snow
        out = out * 0.75 + 255.0 * 0.25 * (0.9 if bright else 0.45)
        color = (255, 255, 255) if bright else (200, 205, 225)
        count = area // 70
        # Flakes as small plus shapes (or single dots): centre and four neighbours.
        x = rng.uniform(0, width, size=count)
        y = rng.uniform(0, height, size=count)
        big = rng.random(count) < 0.5
        dx = np.asarray([0, -1, 1, 0, 0], dtype=np.float32)
        dy = np.asarray([0, 0, 0, -1, 1], dtype=np.float32)
        xs = x[:, None] + dx[None, :]  # (count, 5)
        ys = y[:, None] + dy[None, :]
        keep = np.ones_like(xs, dtype=bool)
        keep[:, 1:] = big[:, None]
    xi, yi = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    keep &= (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    out[yi[keep], xi[keep]] = np.asarray(color, dtype=np.float32)
    return (np.clip(out, 0, 255) + 0.5).astype(np.uint8)
