"""Which cameras a grant or an emergency covers.

A scope lists cameras and/or describes them: a category, a unit subtree, a circle
around a point.  A camera is covered when it is listed, or when it matches every
description given (so "category bridge within unit 330100" is the bridges of 330100).
Descriptions match cameras added later too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from camrelay.catalog.models import Camera

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Near:
    latitude: float
    longitude: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class Scope:
    camera_ids: frozenset[int] = frozenset()
    category: str | None = None
    unit_ids: frozenset[int] | None = None  # the resolved subtree of the scope unit
    near: Near | None = None

    @property
    def describes(self) -> bool:
        return self.category is not None or self.unit_ids is not None or self.near is not None

    def covers(self, camera: Camera) -> bool:
        if camera.id in self.camera_ids:
            return True
        if not self.describes:
            return False
        if self.category is not None and camera.category != self.category:
            return False
        if self.unit_ids is not None and camera.unit_id not in self.unit_ids:
            return False
        if self.near is not None:
            if camera.latitude is None or camera.longitude is None:
                return False
            if distance_km(self.near.latitude, self.near.longitude, camera.latitude,
                           camera.longitude) > self.near.radius_km:
                return False
        return True


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
