"""Triton Python-backend model: one exported ONNX tower run with ONNX Runtime.

Copied as ``<repository>/<model>/1/model.py`` by :mod:`trainer.export.triton`; it runs inside
Triton's Python stub (``triton_python_backend_utils`` exists only there), never in this project.
For Triton builds without the onnxruntime backend (e.g. PyPI's ``nvidia-pytriton`` server); the
stub's environment needs ``numpy`` and ``onnxruntime`` (``onnxruntime-gpu`` for GPU instances).
Triton's dynamic batcher hands several requests to one ``execute`` call: they are concatenated
into one ONNX Runtime run and split again, so batching works as on the onnxruntime backend.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(folder, params.get("onnx_file", "model.onnx"))
        disabled = [name for name in params.get("disabled_optimizers", "").split(",") if name]
        providers = ["CPUExecutionProvider"]
        if (
            args.get("model_instance_kind") == "GPU"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            device = args.get("model_instance_device_id", "0")
            providers = [("CUDAExecutionProvider", {"device_id": int(device)}), "CPUExecutionProvider"]
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0") or 0)
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=providers, disabled_optimizers=disabled)
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests):
        try:
            arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
            batch = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
            outputs = self.session.run([self.output_name], {self.input_name: batch})[0].astype(np.float32)
        except Exception as error:  # every request of the batch gets the error, the model stays up
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))) for _ in requests]
        responses, start = [], 0
        for array in arrays:
            stop = start + array.shape[0]
            tensor = pb_utils.Tensor(self.output_name, outputs[start:stop])
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start = stop
        return responses

    def finalize(self):
        self.session = None
