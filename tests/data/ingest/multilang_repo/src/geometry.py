"""Small plane-geometry helpers."""
import math


def polygon_area(points):
    """Return the area of a simple polygon given its vertices in order (shoelace formula)."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0


# Distance between two points in the plane.
def distance(a, b):
    return math.hypot(a[0] - b[0], a[1] - b[1])


class Circle:
    """A circle with a centre and a radius."""

    def __init__(self, center, radius):
        if radius < 0:
            raise ValueError("radius must be non-negative")
        self.center = center
        self.radius = radius

    @property
    def area(self):
        """The area enclosed by the circle."""
        return math.pi * self.radius ** 2

    def contains(self, point):
        """True if `point` lies inside or on the circle."""
        return distance(self.center, point) <= self.radius
