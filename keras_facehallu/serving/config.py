"""TF-Serving's side files, built from its protos and checked by parsing them back.

``models.config`` (``--model_config_file``) is a ``tensorflow.serving.ModelServerConfig`` from
``tensorflow-serving-api``; ``batching_parameters.txt`` (``--batching_parameters_file``) is a
``tensorflow.serving.BatchingParameters``. That message is not in the pip package, so it is declared
here in a private descriptor pool with the field names, numbers and types of
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``. Both files are written with
``google.protobuf.text_format`` (names are quoted and escaped by it, not by string formatting) and
:func:`check_model_dir` parses them back with the same messages, as TF-Serving does at start.

Example:
    >>> print(batching_parameters_text(batching_parameters(max_batch_size=8)), end="")
    max_batch_size { value: 8 }
    batch_timeout_micros { value: 5000 }
    max_enqueued_batches { value: 64 }
    num_batch_threads { value: 4 }
    >>> print(models_config_text(models_config([("facehallu", "/models/facehallu")])), end="")
    model_config_list {
      config {
        name: "facehallu"
        base_path: "/models/facehallu"
        model_platform: "tensorflow"
      }
    }

Command line (checks a model folder written by ``facehallu-export savedmodel``)::

    python -m keras_facehallu.serving.config MODEL_DIR
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

MODELS_CONFIG = "models.config"
BATCHING_FILE = "batching_parameters.txt"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@functools.cache
def batching_parameters_class():
    """The ``tensorflow.serving.BatchingParameters`` message class (a private descriptor pool)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="keras_facehallu/session_bundle_config_batching.proto",
        package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    for name, number, kind, label, type_name in [
            ("max_batch_size", 1, field.TYPE_MESSAGE, optional, ".google.protobuf.Int64Value"),
            ("batch_timeout_micros", 2, field.TYPE_MESSAGE, optional,
             ".google.protobuf.Int64Value"),
            ("max_enqueued_batches", 3, field.TYPE_MESSAGE, optional,
             ".google.protobuf.Int64Value"),
            ("num_batch_threads", 4, field.TYPE_MESSAGE, optional, ".google.protobuf.Int64Value"),
            ("thread_pool_name", 5, field.TYPE_MESSAGE, optional,
             ".google.protobuf.StringValue"),
            ("allowed_batch_sizes", 6, field.TYPE_INT64, repeated, None),
            ("pad_variable_length_inputs", 7, field.TYPE_BOOL, optional, None)]:
        added = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            added.type_name = type_name
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def batching_parameters(max_batch_size: int = 16, batch_timeout_micros: int = 5000,
                        max_enqueued_batches: int = 64, num_batch_threads: int = 4):
    """A checked ``BatchingParameters`` message (positive integers; the timeout may be 0)."""
    values = {"max_batch_size": max_batch_size, "batch_timeout_micros": batch_timeout_micros,
              "max_enqueued_batches": max_enqueued_batches,
              "num_batch_threads": num_batch_threads}
    message = batching_parameters_class()()
    for name, value in values.items():
        lowest = 0 if name == "batch_timeout_micros" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{name}: expected an integer of at least {lowest}, "
                             f"found {value!r}")
        getattr(message, name).value = value
    return message


def batching_parameters_text(message) -> str:
    """Text format with one top-level field per line, as TF-Serving's documentation shows it."""
    from google.protobuf import text_format

    lines = []
    for field, value in message.ListFields():
        part = type(message)()
        if hasattr(value, "extend"):  # a repeated field
            getattr(part, field.name).extend(value)
        elif field.message_type is not None:
            getattr(part, field.name).CopyFrom(value)
        else:
            setattr(part, field.name, value)
        lines.append(text_format.MessageToString(part, as_one_line=True))
    return "\n".join(lines) + "\n"


def models_config(entries):
    """A ``ModelServerConfig`` listing ``(name, base_path)`` entries (TensorFlow platform)."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in entries:
        if not _NAME.fullmatch(name):
            raise ValueError(f"model name: expected letters, digits, '.', '_' or '-', "
                             f"found {name!r}")
        if not str(base_path).startswith("/"):
            raise ValueError(f"base_path of {name!r}: expected an absolute path, "
                             f"found {base_path!r}")
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, str(base_path), "tensorflow"
    return config


def models_config_text(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_models_config(path):
    """Parses ``path`` as TF-Serving does; ``ValueError`` naming the file on any problem."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), config)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a ModelServerConfig in text format ({err})") from err
    names = [c.name for c in config.model_config_list.config]
    if not names:
        raise ValueError(f"{path}: expected at least one model in model_config_list, found none")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: model names appear twice: {sorted(names)}")
    return config


def parse_batching_parameters(path):
    """Parses ``path`` as a ``BatchingParameters``; ``ValueError`` naming the file on a problem."""
    from google.protobuf import text_format

    message = batching_parameters_class()()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), message)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not BatchingParameters in text format ({err})") from err
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                 "num_batch_threads"):
        lowest = 0 if name == "batch_timeout_micros" else 1
        if message.HasField(name) and getattr(message, name).value < lowest:
            raise ValueError(f"{path}: {name}: expected at least {lowest}, found "
                             f"{getattr(message, name).value}")
    sizes = list(message.allowed_batch_sizes)
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != message.max_batch_size.value):
        raise ValueError(f"{path}: allowed_batch_sizes: expected increasing sizes ending at "
                         f"max_batch_size ({message.max_batch_size.value}), found {sizes}")
    return message


def check_model_dir(model_dir) -> list[str]:
    """Parses both side files of ``model_dir`` and checks each listed model has a version folder.

    Returns the served model names; raises ``ValueError`` naming the file and the problem.
    """
    model_dir = Path(model_dir)
    config = parse_models_config(model_dir / MODELS_CONFIG)
    parse_batching_parameters(model_dir / BATCHING_FILE)
    names = []
    for entry in config.model_config_list.config:
        folder = model_dir / entry.name
        if not (folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())):
            raise ValueError(f"{model_dir / MODELS_CONFIG}: model {entry.name!r} has no version "
                             f"folder under {folder}")
        if entry.model_platform != "tensorflow":
            raise ValueError(f"{model_dir / MODELS_CONFIG}: model {entry.name!r}: expected "
                             f"model_platform 'tensorflow', found {entry.model_platform!r}")
        names.append(entry.name)
    return names


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m keras_facehallu.serving.config MODEL_DIR", file=sys.stderr)
        return 2
    try:
        names = check_model_dir(args[0])
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
