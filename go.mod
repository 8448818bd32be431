module github.com/tonevault/tonevault

go 1.26

require github.com/zaf/g711 v1.4.0
