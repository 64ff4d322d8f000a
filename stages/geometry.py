"""Stage geometry: the frame geometry decode stores, resolved once: `decode.short_side`, or with
`auto` the largest input side of the listed backends, and their shared input geometry when they
have one. decode depends on this file rather than on every backend's section, so a change to a
backend that keeps its input geometry (its head, batch size, device) does not re-run decode."""

from vidmem.backends import decode_geometry
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json


def main(args, params):
    geometry = decode_geometry(params)
    write_json(args.out, geometry)
    shared = geometry["input_geometry"]
    print(f"geometry: short side {geometry['short_side']}" + (
        "" if shared is None else
        f", stored at {shared['height']}x{shared['width']} ({shared['resize']})"))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="JSON of the resolved geometry")
    run_stage(parser, main)
