"""The Python half of the interop tests: the same samples as Samples.swift, built with the
`protobuf` package from stubs that grpc_tools.protoc compiled at test time.

usage: interop.py STUBS_DIR DIR NAME...
For each NAME: decodes DIR/NAME.swift.bin (written by Swift), checks it equals the sample, writes
the sample encoded by Python (deterministic) to DIR/NAME.python.bin and prints
`NAME same|different|MISMATCH <details>`.
"""
import sys

sys.path.insert(0, sys.argv[1])
from faultline.testing.v1 import field_kinds_pb2 as pb  # noqa: E402

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX, UINT64_MAX = 2**32 - 1, 2**64 - 1
THREE_MIB = bytes(i % 251 for i in range(3 << 20))
UNICODE = "héllo wörld 🌍 日本語 \x7f \U0010ffff"


def point(x=0, y=0, label=""):
    return pb.FieldKinds.Point(x=x, y=y, label=label)


def full():
    m = pb.FieldKinds()
    m.f_double = -2.5e300
    m.f_float = 3.5
    m.f_int32 = -42
    m.f_int64 = INT64_MIN
    m.f_uint32 = UINT32_MAX
    m.f_uint64 = UINT64_MAX
    m.f_sint32 = INT32_MIN
    m.f_sint64 = -1
    m.f_fixed32 = 0xDEADBEEF
    m.f_fixed64 = 0x0123456789ABCDEF
    m.f_sfixed32 = -7
    m.f_sfixed64 = INT64_MAX
    m.f_bool = True
    m.f_string = UNICODE
    m.f_bytes = bytes([0, 1, 2, 0xFF, 0])
    m.colour = pb.COLOUR_ULTRAVIOLET
    m.shape = pb.FieldKinds.SHAPE_SQUARE
    m.point.CopyFrom(point(-1, 2, "origin"))
    m.r_int32.extend([0, -1, 1, INT32_MAX, INT32_MIN])
    m.r_int64.extend([INT64_MIN, 0, INT64_MAX])
    m.r_uint64.extend([0, UINT64_MAX])
    m.r_double.extend([0.5, -0.25, 1e-300])
    m.r_bool.extend([True, False, True])
    m.r_string.extend(["", "a", UNICODE])
    m.r_bytes.extend([b"", b"\x00", b"\x01\x02\x03"])
    m.r_colour.extend([pb.COLOUR_RED, 999, pb.COLOUR_UNSPECIFIED, pb.COLOUR_GREEN])
    m.r_point.extend([point(), point(5, -5, "p")])
    m.r_sint32.extend([-3, 3])
    m.r_float.extend([1.5, -0.125])
    m.m_string.update({"a": "alpha", "b": "beta", "ü": "ümlaut"})
    m.m_point[-5].CopyFrom(point(1, 1, "minus five"))
    m.m_point[7].CopyFrom(point(7, 0, ""))
    m.m_bytes.update({"k": b"\x09\x08\x07", "z": b"\x00"})
    m.m_colour.update({1: pb.COLOUR_RED, -2: 12345})
    m.m_bool[True] = 1
    m.m_uint32[2_000_000_000] = -1.5
    m.c_point.CopyFrom(point(3, 4, "five"))
    m.o_ratio = 0.125
    return m


def zeros():
    m = pb.FieldKinds()
    m.m_string[""] = ""
    m.m_point[0].CopyFrom(point())
    m.m_bytes[""] = b""
    m.m_colour[0] = pb.COLOUR_UNSPECIFIED
    m.m_bool[False] = 0
    m.m_uint32.update({0: 0.0, UINT32_MAX: 1.0, 1: 2.0})
    m.c_number = 0
    m.o_point.CopyFrom(point())
    return m


def empty_blob():
    m = pb.FieldKinds()
    m.c_blob = b""
    return m


def false_flag():
    m = pb.FieldKinds()
    m.c_flag = False
    m.o_ratio = 0.0
    return m


def big():
    m = pb.FieldKinds()
    m.f_bytes = THREE_MIB
    m.r_bytes.append(THREE_MIB)
    return m


SAMPLES = {"empty": pb.FieldKinds, "full": full, "zeros": zeros, "emptyBlob": empty_blob, "falseFlag": false_flag, "big": big}


def first_difference(a: bytes, b: bytes) -> str:
    at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return f"at byte {at} of {len(a)}/{len(b)}: swift {a[at:at + 24].hex()} python {b[at:at + 24].hex()}"


def main():
    directory = sys.argv[2]
    for name in sys.argv[3:]:
        expected = SAMPLES[name]()
        with open(f"{directory}/{name}.swift.bin", "rb") as f:
            swift_bytes = f.read()
        got = pb.FieldKinds.FromString(swift_bytes)
        ours = expected.SerializeToString(deterministic=True)
        with open(f"{directory}/{name}.python.bin", "wb") as f:
            f.write(ours)
        if got != expected:
            print(f"{name} MISMATCH python decoded {str(got)[:2000]!r}")
        elif got.WhichOneof("choice") != expected.WhichOneof("choice") or got.WhichOneof("other") != expected.WhichOneof("other"):
            print(f"{name} MISMATCH oneof cases {got.WhichOneof('choice')}/{got.WhichOneof('other')}")
        else:
            print(f"{name} {'same' if ours == swift_bytes else 'different ' + first_difference(swift_bytes, ours)}")


main()
