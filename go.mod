module github.com/tonevault/tonevault

go 1.26

require (
	github.com/zaf/g711 v1.4.0
	go.uber.org/zap v1.28.0
	go.uber.org/zap/exp v0.3.0
)

require go.uber.org/multierr v1.10.0 // indirect
