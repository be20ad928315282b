package main

import (
	"log/slog"

	contract "github.com/xdna-whisper/xdna-whisper/api/report"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/podreport"
)

// withPodReport also publishes staging progress as an annotation on pod (the operator's staging
// Job passes its own pod's name), for the WhisperEncoder's status.staging. Reporting is best
// effort: when the pod cannot be reached the stager logs why and stages anyway. The returned
// finish sends the last report.
func withPodReport(logger *slog.Logger, pod string, progress func(convert.Progress)) (func(convert.Progress), func()) {
	if pod == "" {
		return progress, func() {}
	}
	r, err := podreport.InCluster(pod)
	if err != nil {
		logger.Warn("no progress reporting to the pod", "err", err)
		return progress, func() {}
	}
	return func(p convert.Progress) {
			progress(p)
			r.Report(contract.Progress{Phase: p.Phase, BytesDone: p.Done, BytesTotal: p.Total})
		}, func() {
			if err := r.Close(); err != nil {
				logger.Warn("progress reporting to the pod failed", "err", err)
			}
		}
}
