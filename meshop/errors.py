"""The one exception type users see for bad input."""


class MeshError(ValueError):
    """A mesh, point cloud, field or checkpoint that meshop cannot use.

    The message is one sentence naming the file (when there is one) and the defect.
    """
