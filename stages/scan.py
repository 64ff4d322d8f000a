"""Stage scan: the manifest of the data set's videos, labels and captions, and of the folds file
when `cv.folds_file` is set (size and sha256 of each
regular file; FIFOs, sockets, devices and links out of the videos folder named, never opened).
DVC runs it every time; the stages that read the data set depend on its manifest, never on the
raw folders (vidmem.data.inputs)."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.data.inputs import scan_inputs, write_manifest


def main(args, params):
    data = params.data
    manifest = scan_inputs(data.videos_dir, data.ground_truth, data.captions,
                           params.cache.dir, progress=not args.no_progress,
                           folds_file=params.cv_folds_file)
    write_manifest(args.manifest, manifest)
    videos = manifest["videos"]
    for entry in videos["not_opened"]:
        print(f"scan: {data.videos_dir}/{entry['entry']} not opened: {entry['reason']}")
    counts = [f"{len(videos['files'])} video(s)",
              f"{len(manifest['ground_truth']['files'])} label file(s)"]
    if manifest["captions"] is not None:
        counts.append(f"{len(manifest['captions']['files'])} caption file(s)")
    print(f"scan: {', '.join(counts)}, {len(videos['not_opened'])} entr(ies) not opened; "
          f"{manifest['hashed']} file(s) hashed, the rest unchanged since the last scan")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--manifest", required=True, help="JSON manifest to write")
    run_stage(parser, main)
