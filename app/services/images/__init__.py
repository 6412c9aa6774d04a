"""Uploaded images: `uploads` accepts (bounded), `headers` is what the web process reads of a file,
`files` where they live, `pipeline` decodes and renders, `renditions` is the images job's work."""
