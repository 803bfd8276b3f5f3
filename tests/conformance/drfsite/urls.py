"""``api/chunked_upload/`` and ``api/chunked_upload/<uuid:pk>/`` -> ChunkedUploadView."""

from django.urls import path
from drf_chunked_upload.views import ChunkedUploadView

_view = ChunkedUploadView.as_view()

urlpatterns = [
    path("api/chunked_upload/", _view, name="chunkedupload-list"),
    # The library's serializer builds `url` with reverse("chunkedupload-detail", pk=...).
    path("api/chunked_upload/<uuid:pk>/", _view, name="chunkedupload-detail"),
]
