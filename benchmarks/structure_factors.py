"""Benchmark of structure factors from an atomic model (-model / nb-hkl).

    SF1  2,000 atoms, 60 x 70 x 80 A cell (90 degree angles), P 1, F to 2 A (the README's target)
    SF2  the same atoms in a triclinic cell (60 70 80 80 95 100): no reciprocal axis is
         perpendicular to the other two, so F takes the direct sum over atoms and reflections

Per workload: F computed in-process (`p1_amplitudes`, median of --repeats after one warm-up), and
the whole `nb-hkl model.pdb P1.hkl --dmin 2` command (start-up, reading, F, writing the text
file), each as wall time and CPU seconds (user + system, all threads: on a loaded machine CPU
seconds / threads estimates the wall time the machine would take alone), with the peak memory of
the command. The model is random (fixed seed):
C, N, O, S atoms with B from 10 to 30 A^2.

    .venv/bin/python benchmarks/structure_factors.py [--repeats 3] [--only SF1] [--out FILE]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import git_state, machine_info

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "SF1": ("2,000 atoms, 60x70x80 A P1 cell, F to 2 A", (60.0, 70.0, 80.0, 90.0, 90.0, 90.0)),
    "SF2": ("2,000 atoms, triclinic 60 70 80 80 95 100 P1 cell, F to 2 A (direct sum)",
            (60.0, 70.0, 80.0, 80.0, 95.0, 100.0)),
}
ATOMS, DMIN, SEED = 2000, 2.0, 2024


def write_model(path, cell):
    import gemmi

    rng = np.random.default_rng(SEED)
    st = gemmi.Structure()
    st.cell, st.spacegroup_hm = gemmi.UnitCell(*cell), "P 1"
    model, chain = gemmi.Model("1"), gemmi.Chain("A")
    for i, el in enumerate(rng.choice(["C", "N", "O", "S"], ATOMS, p=[0.62, 0.17, 0.19, 0.02])):
        res = gemmi.Residue()
        res.name, res.seqid = "UNK", gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element = str(el), gemmi.Element(str(el))
        atom.pos = st.cell.orthogonalize(gemmi.Fractional(*rng.uniform(0.0, 1.0, 3)))
        atom.b_iso, atom.occ = rng.uniform(10.0, 30.0), 1.0
        res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.write_pdb(str(path))


def in_process(path, repeats):
    from nanobrag_torch.io.structures import read_model
    from nanobrag_torch.structure import p1_amplitudes, reflections_within

    model = read_model(path)
    hkl = reflections_within(model.cell, DMIN)
    p1_amplitudes(model, hkl[:1000])  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        p1_amplitudes(model, hkl)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return len(hkl), times, cpu


def command(path, folder, repeats):
    times, peaks, cpu = [], [], []
    code = ("import resource, sys; from nanobrag_torch.hkltool import main; rc = main(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    for _ in range(repeats):
        start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sys.executable, "-c", code, str(path), str(folder / "P1.hkl"), "--dmin", str(DMIN)],
                              capture_output=True, text=True, timeout=1800, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"nb-hkl failed: {done.stderr.strip()[-500:]}")
        peaks.append(int(done.stdout.split("PEAK_KB")[-1].split()[0]))
    return times, cpu, max(peaks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--out", help="JSON record (default benchmarks/results/structure_factors/sf-<UTC time>.json)")
    args = parser.parse_args(argv)
    record = {"machine": machine_info(), "git": git_state(), "loadavg_before": os.getloadavg(),
              "atoms": ATOMS, "dmin_A": DMIN, "workloads": {}}
    import torch
    record["torch"], record["torch_threads"] = torch.__version__, torch.get_num_threads()
    print("| id | workload | reflections | F in-process s (median; CPU s) | nb-hkl command s (median; CPU s) | peak MiB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            desc, cell = WORKLOADS[name]
            path = Path(tmp) / f"{name}.pdb"
            write_model(path, cell)
            n, f_times, f_cpu = in_process(path, args.repeats)
            c_times, c_cpu, peak = command(path, Path(tmp), args.repeats)
            record["workloads"][name] = {"description": desc, "cell": cell, "reflections": n, "f_seconds": f_times,
                                         "f_cpu_seconds": f_cpu, "command_seconds": c_times,
                                         "command_cpu_seconds": c_cpu, "peak_rss_kb": peak}
            med = statistics.median
            print(f"| {name} | {desc} | {n} | {med(f_times):.2f} ({med(f_cpu):.1f} CPU) | "
                  f"{med(c_times):.2f} ({med(c_cpu):.1f} CPU) | {peak / 1024:.0f} |")
    record["loadavg_after"] = os.getloadavg()
    # a folder of their own: run.py's history plot reads the records in benchmarks/results/
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / "structure_factors" / time.strftime(
        "sf-%Y%m%d-%H%M%S.json", time.gmtime())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"record: {out} (load average {record['loadavg_before'][0]:.1f} -> {record['loadavg_after'][0]:.1f})")
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
