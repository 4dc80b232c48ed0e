"""Search a folder of images by text or by image: the index folder
(clip-retrieval's layout), the k-NN index and the HTTP server."""
