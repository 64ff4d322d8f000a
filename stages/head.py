"""Stage head: one chain's head (`chains.<name>.head`) and the settings it trains with, resolved from
params.yaml into one small file (the LSTM's `lr`, `epochs`, `batch_size` and `model.*`; a grid
head's strengths). Train and cv_train depend on this file instead of on every head's params, so
`dvc exp run -S lr=1e-4` re-trains only the chains whose head is the LSTM, and a head change
re-runs neither decode nor extract."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json
from vidmem.learn.chain import head_settings


def main(args, params):
    settings = head_settings(params, args.chain)
    write_json(args.out, settings)
    print(f"head {args.chain}: {settings['head']} {settings['settings']}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, chain=True)
    parser.add_argument("--out", required=True, help="JSON of the head and its settings")
    run_stage(parser, main)
