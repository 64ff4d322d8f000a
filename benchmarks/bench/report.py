"""BENCHMARKS.md from the results: one table row per measurement, with its floor and target.
Hand-written notes below the `<!-- notes -->` marker are kept."""

from __future__ import annotations

from pathlib import Path


def memory_rows(memory: dict | None) -> list[str]:
    if not memory:
        return []
    rows = [f"| memory at {int(n):,} videos ({m['features_mb']} MB of features) | peak RSS: concat "
            f"{m['concat_peak_rss_mb']} MB, train (2 epochs, hidden {memory['hidden_size']}) "
            f"{m['train_peak_rss_mb']} MB, evaluate {m['evaluate_peak_rss_mb']} MB | | | flat |"
            for n, m in memory["per_n"].items()]
    t = memory["throughput"]
    rows.append(f"| peak RSS growth, largest over smallest N | "
                f"{memory['peak_rss_growth_32k_over_2k']}× | | | ≤ 1.2 |")
    rows.append(f"| training from disk vs in memory, {t['videos']:,} videos | "
                f"{t['streamed_samples_per_s']} samples/s | {t['in_memory_samples_per_s']} "
                f"samples/s in memory | {t['stream_over_inmemory']} | ≥ 0.9 |")
    if "matroska_sparse" in memory:
        m = memory["matroska_sparse"]
        rows.append(f"| decode's WebM frame counter on a {m['file_bytes'] / 2**30:g} GB sparse "
                    f"container (a clip's bytes, then a hole) | peak RSS grew "
                    f"{m['peak_rss_growth_mb']} MB while counting (process peak "
                    f"{m['peak_rss_mb']} MB with torch loaded; {m['seconds']} s) | 4,096 MB "
                    "when the file was read whole | | < 500 MB |")
    return rows


def decode_long_rows(long: dict | None) -> list[str]:
    if not long:
        return []
    return [f"| decode {long['clips']} long clips ({long['seconds_per_clip']} s, {long['clip']}), "
            f"strategy {', '.join(long['strategies'])} | {long['stage_s']} s (stage code) | "
            f"{long['seek_floor_s']} s (8 `-ss` processes per clip) | "
            f"{long['stage_over_seek_floor']}× floor; a whole-stream pass takes "
            f"{long['whole_stream_s']} s ({long['whole_over_stage']}× the stage) | ≤ 1.5× |"]


def measured_on(part: dict) -> str:
    """Where and when a part of benchmarks/gpu.py ran: the GPU, the box's cores, the day. A
    part that fails keeps its earlier rows, so the rows of one table may come from several
    boxes and sessions; each says which."""
    return f"{part['device']}, {part['cores']} cores, {part['date'][:10]}"


def gpu_rows(gpu: dict | None) -> list[str]:
    """The GPU box's rows (benchmarks/gpu.py), each with where and when its part ran."""
    if not gpu:
        return []
    rows = []
    if "extract" in gpu:
        part = gpu["extract"]
        for r in part["result"]:
            # Rows recorded before the host ceiling was measured have none.
            # Loader start-up was timed from 2026-12-07 on.
            start = (f"; loader processes started in {r['loader_start_s']} s"
                     if "loader_start_s" in r else "")
            host = (f" (host side alone, null network: {r['host_ceiling_fps']:,} frames/s; "
                    f"driving process {r['stage_process_cpu_ms_per_video']} ms CPU per "
                    f"video{start})" if "host_ceiling_fps" in r else "")
            rows.append(f"| GPU extract efficientnet_lite0, {r['precision']}, batch {r['batch']} "
                        f"({r['frames']:,} frames; {measured_on(part)}) | "
                        f"{r['stage_fps']:,} frames/s{host} | {r['floor_fps']:,} frames/s bare "
                        f"forward | {r['ratio']} of floor | ≥ 0.8 |")
    if "profile" in gpu:
        rows.append(profile_row(gpu["profile"]))
    if "train" in gpu:
        t, part = gpu["train"]["result"], gpu["train"]
        # What TF32 off (vidmem's choice, docs/gpu.md) costs the LSTM: runs before 2026-12-07
        # did not measure it.
        tf32 = (f" (TF32 on: {t['bare_tf32_s_per_epoch']} s)"
                if "bare_tf32_s_per_epoch" in t else "")
        rows.append(f"| GPU train, reference LSTM ({t['hidden']}×3), {t['videos_train']:,} train / "
                    f"{t['videos_val']:,} val videos ({measured_on(part)}) | "
                    f"{t['train_model_s_per_epoch']} s/epoch (data on the device; streamed: "
                    f"{t['streamed_s_per_epoch']} s, {t['streamed_ratio']}×) | "
                    f"{t['bare_s_per_epoch']} s/epoch bare loop{tf32} | {t['ratio']}× bare; two "
                    f"runs bitwise equal: {t['two_runs_bitwise_equal']} | ≤ 1.5× |")
    if "decode" in gpu:
        d, part = gpu["decode"]["result"], gpu["decode"]
        rows.append(f"| GPU box decode, {d['videos']} clips (3 s, 640×360), {d['workers']} workers "
                    f"({measured_on(part)}; frames stored raw) | {d['stage_s']} s | "
                    f"{d['floor_s']} s bare ffmpeg | {d['ratio']}× floor | ≤ 1.5× |")
    if "numerics" in gpu and gpu["numerics"]["result"]:
        n = gpu["numerics"]["result"]
        rows.append(f"| GPU features vs CPU features ({n['frames']} photo frames, "
                    f"{measured_on(gpu['numerics'])}), relative L2 mean / max | fp32 (TF32 off, the "
                    f"default) {n['fp32']['rel_l2_mean']} / {n['fp32']['rel_l2_max']}; TF32 on "
                    f"{n['fp32_tf32']['rel_l2_mean']} / {n['fp32_tf32']['rel_l2_max']}; fp16 "
                    f"{n['fp16']['rel_l2_mean']} / {n['fp16']['rel_l2_max']}; bf16 "
                    f"{n['bf16']['rel_l2_mean']} / {n['bf16']['rel_l2_max']} | | | stated |")
        if "after_refused_page_lock" in n:  # checked since 2026-12-07
            rows.append(f"| GPU extract after CUDA refused to page-lock its input "
                        f"({measured_on(gpu['numerics'])}) | {n['after_refused_page_lock']} | | "
                        "| extract ran |")
    if "e2e" in gpu:
        e, part = gpu["e2e"]["result"], gpu["e2e"]
        steps = ", ".join(f"{name} {seconds} s" for name, seconds in e["steps_s"].items())
        rows.append(f"| GPU box end to end: {e['clips']:,} clips ({e['seconds_per_clip']:g} s, "
                    f"{e['size']}; {e['distinct_clips']} distinct, cache off) → decode → "
                    f"normalize → extract → train ({e['epochs']} epochs) ({measured_on(part)}) | "
                    f"{e['wall_s']} s wall: {steps} | decode floor {e['decode_floor_s']} s "
                    f"(bare ffmpeg) | {e2e_verdict(e)} | ≤ {e['goal_s']} s |")
    return rows


def profile_row(part: dict) -> str:
    """Where one extract run's time went: the GPU's busy share of the wall, and the functions
    of the thread that drives it with the most time of their own."""
    p = part["result"]
    device = p["device"]
    busy = (f"GPU kernels busy {device['kernels_busy_fraction']:.0%} of the {p['traced_s']} s "
            f"wall, kernels or copies {device['any_busy_fraction']:.0%}" if device
            else "no GPU")
    top = "; ".join(f"{f['function']} {f['own_s']} s" for f in p["driving_thread_top_own_time"][:4])
    return (f"| GPU extract profiled, {p['precision']}, batch {p['batch']} ({p['frames']:,} frames; "
            f"{measured_on(part)}) | {busy}; the driving thread's own time ({p['profiled_s']} s "
            f"under yappi, {p['driving_thread_in_chunks_s']} s in chunks): {top}"
            f"{fork_text(p.get('fork'))} | {p['stage_fps']:,} frames/s unprofiled | | |")


def fork_text(fork: dict | None) -> str:
    """One fork's cost in a fresh process in the state extract forks its loaders from, and in
    the earlier states it could fork them from (measured from 2026-12-07 on; earlier rows
    have none)."""
    if not fork:
        return ""
    today = fork["backend_run_on_its_device"]
    return (f"; one fork where extract forks its loaders (model on its device, after a run) "
            f"{today['fork_ms']} ms ({today['rss_anon_mib']} MiB anonymous), with the backend "
            f"built on the CPU alone {fork['backend_built_on_cpu']['fork_ms']} ms, with torch "
            f"imported {fork['torch_imported']['fork_ms']} ms")


def e2e_verdict(e: dict) -> str:
    """Whether the end-to-end run met its goal, else the step furthest above its floor (the
    measured floors: bare ffmpeg, the bare forward pass, the bare training loop) and what the
    floors alone add up to."""
    if e["wall_s"] <= e["goal_s"]:
        return "goal met"
    floors = e.get("floors_s", {"decode": e["decode_floor_s"]})
    steps = e["steps_s"]
    worst = max(steps, key=lambda name: steps[name] - floors.get(name, 0.0))
    held = (f"{worst} holds it back most: {steps[worst]} s against a floor of {floors[worst]} s"
            if worst in floors else f"{worst} holds it back most: {steps[worst]} s (no floor "
            "measured)")
    measured = ", ".join(f"{name} {seconds} s" for name, seconds in floors.items())
    return f"{held}; floors: {measured} (sum {round(sum(floors.values()), 1)} s)"


def footprint_rows(f: dict | None) -> list[str]:
    if not f:
        return []
    default = f.get("default_format", "webp")
    drift = f["features_vs_raw_frames"]
    projection = ", ".join(f"{int(n):,} videos {b / 1e9:,.1f} GB"
                           for n, b in f["projection_bytes"].items())
    others = [kind for kind in ("webp", "png", "jpeg") if kind in f["other_formats"]]
    before = f["bytes_per_video_before"]
    return [
        f"| disk per video, all copies ({f['clips']}; {f['backend']}) | "
        f"{f['bytes_per_video_all_copies']:,} B (default params: lossless {default}; "
        f"{projection}) | "
        + (f"{before:,} B before | {before / f['bytes_per_video_all_copies']:.1f}× smaller | "
           if before else "| (no older layout measured) | ")
        + "≤ 1,000,000 B |",
        *[f"| … with `decode.format: {kind}` | "
          f"{f['other_formats'][kind]['bytes_per_video_all_copies']:,} B | | features "
          f"{drift[kind]['rel_l2_mean']} relative L2 from raw frames' (cosine ≥ "
          f"{drift[kind]['cosine_min']}) | "
          f"{'lossy: not the default' if kind == 'jpeg' else 'lossless'} |" for kind in others],
        *([f"| … raw frames as ffmpeg decodes them (`npy`, short side 224, aspect kept; the "
           f"reference for feature drift) | {f['other_formats']['raw']['bytes_per_video_all_copies']:,}"
           " B | | | |"] if "raw" in f["other_formats"] else []),
        f"| features from stored frames vs raw frames (default params) | relative L2 "
        f"{drift[default]['rel_l2_mean']} mean, {drift[default]['rel_l2_max']} max, cosine ≥ "
        f"{drift[default]['cosine_min']} over {drift[default]['frames']} frames | | | ≤ 0.01 |",
        f"| files per stage output per 1,000 videos (shards + index.json + info.json, written "
        f"by the stages' shard writer) | {f['max_files_per_output_per_1000_videos']:,} | 1,000+ "
        f"with one file per video | | ≤ 20 |"]


def dvc_layout_rows(layout: dict | None) -> list[str]:
    if not layout:
        return []
    rows = []
    for n, r in layout["per_videos"].items():
        one, shards = r["one_file_per_video"], r["shards"]
        rows.append(f"| DVC on a stage output of {int(n):,} videos: commit / status / checkout | "
                    f"{one['commit_s']} / {one['status_s']} / {one['checkout_s']} s "
                    f"({one['files']:,} files) | {shards['commit_s']} / {shards['status_s']} / "
                    f"{shards['checkout_s']} s ({shards['files']:,} files: vidmem's shards) | "
                    f"{one['commit_s'] / shards['commit_s']:.1f}× / "
                    f"{one['status_s'] / shards['status_s']:.1f}× / "
                    f"{one['checkout_s'] / shards['checkout_s']:.1f}× faster sharded | stays cheap at 50k |")
    return rows


def scaleout_rows(s: dict | None) -> list[str]:
    if not s:
        return []
    local, ray_1, ray_2 = s["runs"]["local"], s["runs"]["ray_1"], s["runs"]["ray_2"]
    return [
        f"| decode → extract on Ray, 2 CPUs ({s['videos']} videos, {s['backend']}, "
        f"cache empty) | {ray_2['seconds']} s (+ {s['ray_startup_s']} s `ray.init`) | "
        f"{local['seconds']} s local | {s['ray_2_over_local']}× local; outputs sha256-identical: "
        f"{s['ray_identical_to_local']} | ≤ 1.1× |",
        f"| … Ray with 1 CPU | {ray_1['seconds']} s | {ray_2['seconds']} s with 2 | "
        f"{s['ray_1_over_ray_2']}× (the host still has 2 cores for ffmpeg and the driver) | "
        "faster with more CPUs |",
        f"| … Ray's cost per video (no-op task through the executor) | "
        f"{s['per_video_overhead_ms']} ms | {1000 * s['seconds_per_video_local']:.0f} ms of work "
        f"per video locally | other overhead {s['ray_other_overhead_s']} s (workers importing "
        "torch, the actor loading the model, the rest unexplained) | small |"]


def write_markdown(results: dict, path: Path) -> None:
    d, e, t = results["decode"], results["extract"], results["train"]
    n, inc = results["noop_repro"], results["incremental"]
    m, p = results["extract_memory"], results["precision"]
    extract_rows = [
        f"| extract {name}, batch {results['config']['batch_size']}"
        + (" (random weights: timing only)" if r["stage"]["random_weights"] else "") + " | "
        f"{r['interleaved']['stage_fps']} frames/s, peak RSS {r['stage']['peak_rss_mb']} MB | "
        f"{r['interleaved']['floor_fps']} frames/s bare forward, peak RSS "
        f"{r['floor']['peak_rss_mb']} MB | {r['stage_over_floor']} of floor (taking turns in "
        f"{r['interleaved']['chunks']} chunks) | ≥ 0.8 |" for name, r in e.items()]
    train_rows = [
        f"| train, reference LSTM ({t.get('hidden', 1024)}×3, 1280-d input), {device.upper()} | "
        f"{t[device]['seconds_per_epoch']} s/epoch for {t['samples']} videos | "
        f"≈ {t[device]['seconds_per_epoch_6000']} s/epoch for 6000 | | |"
        for device in ("cpu", "cuda") if device in t]
    precision_rows = [
        f"| {p['backend']} features in {precision} vs fp32 ({p['frames']} frames, "
        f"{p['device']}) | "
        f"relative L2 error {p[precision]['rel_l2_mean']} mean, {p[precision]['rel_l2_max']} max; "
        f"cosine ≥ {p[precision]['cosine_min']} | {p[precision]['fps']} frames/s vs "
        f"{p['fps_fp32']} in fp32 | {round(p[precision]['fps'] / p['fps_fp32'], 2)}× speed | "
        f"documented tolerance |" for precision in ("fp16", "bf16") if p]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python benchmarks/run.py {results['argv']}` on {results['date']}.",
        f"Machine: {results['versions']['cores']} cores ({results['versions']['cpu']}), "
        f"GPU: {results['versions']['gpu'] or 'none'}; Python {results['versions']['python']}, "
        f"torch {results['versions']['torch']}, {results['versions']['ffmpeg']}.",
        f"Synthetic videos: {results['config']}.",
        *[f"Later partial run (`--only {' '.join(part['only'])}`): `python benchmarks/run.py "
          f"{part['argv']}` on {part['date']}." for part in results.get("partial_runs", [])],
        "",
        "| what | measured | floor / reference | ratio | target |",
        "|---|---|---|---|---|",
        f"| decode {d['videos']} videos, {results['config']['frames']} frames each, default "
        f"params ({d.get('format', 'npy')}, frames stored as {d.get('stored_frames', '?')}) | "
        f"{d['stage_s']} s (stage code) | {d['floor_s']} s (bare ffmpeg → /dev/null, short side "
        f"{d.get('short_side', 320)}) | {d['stage_over_floor']}× floor | ≤ 1.5× |",
        *([f"| … stored raw (`npy`) | {d['stage_npy_s']} s | {d['floor_s']} s | "
           f"{d['npy_over_floor']}× floor | |"] if "stage_npy_s" in d else []),
        f"| decode, naive per-frame seeks | {d['naive_s']} s | {d['stage_s']} s (stage) | "
        f"naive is {d['naive_over_stage']}× slower | stage faster |",
        *decode_long_rows(results.get("decode_long")),
        *extract_rows,
        f"| extract memory ({m['backend']}): {m['videos_all']} vs {m['videos_quarter']} videos | "
        f"peak RSS "
        f"{m['peak_rss_all_mb']} MB | {m['peak_rss_quarter_mb']} MB | {m['all_over_quarter']}× "
        f"for 4× the videos | bounded by the batch |",
        *precision_rows,
        *train_rows,
        "| no-op `dvc repro` | "
        + (f"{n['seconds']} s (stages run: {', '.join(n['stages_run']) or 'none'})"
           if n["seconds"] is not None
           else n["note"]) + " | | | < 3 s |",
        f"| incremental ({inc['backend']}): +{inc['added']} video(s) to {inc['videos']} | "
        f"{inc['incremental_s']} s | "
        f"{inc['full_s']} s full run | {inc['incremental_over_full']} of full; features "
        f"identical to scratch: {inc['features_identical_to_scratch']} | ≤ 0.05 |",
        *memory_rows(results.get("memory")),
        *footprint_rows(results.get("footprint")),
        *dvc_layout_rows(results.get("dvc_layout")),
        *scaleout_rows(results.get("scaleout")),
        *gpu_rows(results.get("gpu")),
        "",
        "Raw numbers: `benchmarks/results.json`. Notes and history of optimisations: below.",
        "",
    ]
    notes = path.read_text().split("<!-- notes -->", 1)[1] if path.exists() and \
        "<!-- notes -->" in path.read_text() else "\n"
    path.write_text("\n".join(lines) + "<!-- notes -->" + notes)
