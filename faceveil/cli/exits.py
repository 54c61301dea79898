"""The command's exit statuses."""

EXIT_OK, EXIT_MEDIA_FAILED, EXIT_USAGE, EXIT_CONTRACT = 0, 1, 2, 3
