#!/bin/sh
# Format results.tsv (target, workload, read IOPS, read KiB/s, write IOPS,
# write KiB/s) as a Markdown table with ratios to kernel fileio.
set -eu
awk -F'\t' '
{
	iops = $3 + $5; bw = $4 + $6
	key = $1 SUBSEP $2
	IOPS[key] = iops; BW[key] = bw
	if (!($1 in seen_t)) { seen_t[$1] = 1; targets[++nt] = $1 }
	if (!($2 in seen_w)) { seen_w[$2] = 1; works[++nw] = $2 }
}
END {
	printf "| workload | target | IOPS | MiB/s | vs fileio |\n"
	printf "|---|---|---:|---:|---:|\n"
	for (w = 1; w <= nw; w++) {
		base = IOPS["fileio" SUBSEP works[w]]
		for (t = 1; t <= nt; t++) {
			k = targets[t] SUBSEP works[w]
			if (!(k in IOPS)) continue
			ratio = base > 0 ? sprintf("%.2f", IOPS[k] / base) : "-"
			printf "| %s | %s | %d | %.1f | %s |\n", works[w], targets[t],
				IOPS[k], BW[k] / 1024, ratio
		}
	}
}' "$1"
