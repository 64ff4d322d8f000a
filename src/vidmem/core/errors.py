"""Exceptions that carry a message meant for the user: what is wrong, where, and what to do."""


class VidmemError(Exception):
    """A problem with the user's input or configuration (not a bug in vidmem)."""


class ParamsError(VidmemError):
    """params.yaml holds a missing or malformed value."""


class DataError(VidmemError):
    """A data file (ground truth, captions, features) is malformed."""


class VideoError(VidmemError):
    """One video could not be decoded; `video` names it."""

    def __init__(self, video: str, reason: str) -> None:
        super().__init__(f"{video}: {reason}")
        self.video = video
        self.reason = reason


class ShortVideoError(VideoError):
    """The video has fewer frames than asked for and decode.short_video is not 'repeat'."""
