"""`python -m bench`: the video-chunk API's performance benchmark (see bench/__main__.py)."""
