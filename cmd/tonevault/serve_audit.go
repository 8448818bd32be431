package main

import (
	"context"
	"errors"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/configs"
	"github.com/tonevault/tonevault/tokenize"
)

// auditAnchor is where the gateway copies each checkpoint outside the
// trail (audit.anchor): Vault KV through the gateway's own login, or the
// anchor file.
func auditAnchor(cfg configs.Config, vault *tokenize.LazyVault, log *zap.Logger) audit.Anchor {
	if cfg.Audit.Anchor == audit.AnchorVault {
		prefix := cfg.Vault.KV.Prefix + "/" + tokenize.AuditAnchorDir
		log.Info("audit checkpoints anchored in Vault KV", zap.String("mount", cfg.Vault.KV.Mount), zap.String("prefix", prefix))
		return audit.KVAnchor{Prefix: prefix, KV: vaultKV{mount: cfg.Vault.KV.Mount, client: func() (*vaultapi.Client, error) {
			if v := vault.Vault(); v != nil {
				return v.Client(), nil
			}
			return nil, errors.New("vault: not logged in yet")
		}}}
	}
	a, beside := cfg.Audit.FileAnchor()
	if beside {
		log.Warn("AUDIT CHECKPOINTS ANCHORED BESIDE THE TRAIL: set audit.anchor_file to a path on another file system, or audit.anchor: vault, for production",
			zap.String("anchor_file", a.Path))
	}
	return a
}

// startAuditQueue puts the queue in front of the trail and logs when the
// trail stops and starts being writable. On an error it closes w.
func startAuditQueue(cfg configs.Config, w *audit.Writer, reg prometheus.Registerer, log *zap.Logger) (*audit.Queue, error) {
	q, err := audit.NewQueue(w, audit.QueueOptions{Size: cfg.Audit.QueueSize, CheckpointInterval: cfg.Audit.CheckpointInterval, Registerer: reg})
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Close(ctx)
		return nil, err
	}
	q.Watch(func(err error) {
		if err != nil {
			log.Error("AUDIT TRAIL CANNOT BE WRITTEN: new payments refused, live ones ended (audit_unavailable), /readyz 503; retrying", zap.Error(err))
			return
		}
		log.Warn("audit trail writable again: payments accepted")
	})
	return q, nil
}

// closeAuditQueue writes what the queue holds and closes the trail with
// its final checkpoint.
func closeAuditQueue(q *audit.Queue, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		log.Error("audit close failed", zap.Error(err))
	}
}
