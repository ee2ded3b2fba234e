#!/bin/sh
# Format results.tsv (target, workload, read IOPS, read KiB/s, write IOPS,
# write KiB/s, pass) as a Markdown table with ratios to kernel fileio.
# With several passes each figure is the median of its passes, and
# "spread" is how far the largest pass lies above the smallest.
#   table.sh [--wide] results.tsv
# --wide: one row per workload, one column per target, "IOPS (ratio)".
set -eu
wide=0
[ "$1" = --wide ] && { wide=1; shift; }
awk -F'\t' -v wide="$wide" '
function median(list,    n, v, i, j, t) {
	n = split(list, v, " ")
	for (i = 2; i <= n; i++)	# insertion sort: a handful of passes
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function spread(list,    n, v, i, lo, hi) {
	n = split(list, v, " ")
	lo = hi = v[1] + 0
	for (i = 2; i <= n; i++) {
		if (v[i] + 0 < lo) lo = v[i] + 0
		if (v[i] + 0 > hi) hi = v[i] + 0
	}
	return lo > 0 ? sprintf("%d%%", (hi / lo - 1) * 100 + 0.5) : "-"
}
function fileio_median(work,    k) {
	k = "fileio" SUBSEP work
	return k in IOPS ? median(IOPS[k]) : 0
}
{
	key = $1 SUBSEP $2
	IOPS[key] = IOPS[key] " " ($3 + $5)
	BW[key] = BW[key] " " ($4 + $6)
	N[key]++
	if (N[key] > passes) passes = N[key]
	if (!($1 in seen_t)) { seen_t[$1] = 1; targets[++nt] = $1 }
	if (!($2 in seen_w)) { seen_w[$2] = 1; works[++nw] = $2 }
}
END {
	if (wide) {
		printf "| workload |"
		for (t = 1; t <= nt; t++) printf " %s |", targets[t]
		printf "\n|---|"
		for (t = 1; t <= nt; t++) printf "---|"
		printf "\n"
		for (w = 1; w <= nw; w++) {
			base = fileio_median(works[w])
			printf "| %s |", works[w]
			for (t = 1; t <= nt; t++) {
				k = targets[t] SUBSEP works[w]
				if (!(k in IOPS)) { printf " - |"; continue }
				iops = median(IOPS[k])
				if (base > 0 && targets[t] != "fileio")
					printf " %d (%.2f) |", iops, iops / base
				else
					printf " %d |", iops
			}
			printf "\n"
		}
		exit
	}
	printf "| workload | target | IOPS | MiB/s | vs fileio |%s\n",
		(passes > 1 ? " spread |" : "")
	printf "|---|---|---:|---:|---:|%s\n", (passes > 1 ? "---:|" : "")
	for (w = 1; w <= nw; w++) {
		base = fileio_median(works[w])
		for (t = 1; t <= nt; t++) {
			k = targets[t] SUBSEP works[w]
			if (!(k in IOPS)) continue
			iops = median(IOPS[k])
			ratio = base > 0 ? sprintf("%.2f", iops / base) : "-"
			printf "| %s | %s | %d | %.1f | %s |", works[w], targets[t],
				iops, median(BW[k]) / 1024, ratio
			if (passes > 1) printf " %s |", spread(IOPS[k])
			printf "\n"
		}
	}
}' "$1"
