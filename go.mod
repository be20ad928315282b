module github.com/xdna-whisper/xdna-whisper

go 1.26
