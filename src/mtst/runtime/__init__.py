"""The ONNX backend: an exported folder (``mtst export``) run on onnxruntime behind the usual API.

``session`` holds the folder's format and the onnxruntime session, ``encoder`` the ``OnnxSentenceEncoder``,
``model`` the ``OnnxMultiTaskModel``. ``SentenceEncoder.from_pretrained`` and ``MultiTaskModel.load`` return
these when they are given an export folder. Nothing is imported here, so that importing one module does not
pull in the others.
"""
