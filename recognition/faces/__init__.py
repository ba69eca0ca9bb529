"""Faces: the geometry and preparation every stage shares. Alignment (the five-point template, crop
geometries, the MTCNN and dlib aligners) and real-photo preparation; the embedders beside it in
`recognition.embedders` sit on the same layer."""
