"""Django integration (optional: `pip install autoembed[django]`): declare a watch in a project's
own migrations with the operations of autoembed.django.operations, `Watch` and `Unwatch`."""

from autoembed.django.operations import Unwatch, Watch

__all__ = ["Unwatch", "Watch"]
