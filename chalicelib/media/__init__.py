"""Media: what the bytes are and how chunks become one verified, seekable video.

containers   the container a chunk starts with (sniffing)
ebml         EBML element headers, read and written
matroska     a live WebM/Matroska stream's head and clusters, read
seekable_head  a new head for those clusters: Duration and Cues
probe        duration and streams of a file, from what ffmpeg prints
ffmpeg       the one place that runs ffmpeg
files        chunks grouped into files by their first bytes
verify       duration, decode and audio checks, and the rule of which windows are decoded
stream_check a WebM stream's structure walked as its bytes go into ffmpeg
joins        the join strategy interface: prepare, then upload, verify or abort
fold         folding a recording into >= 5 MiB segments while it goes on
segment_join strategy: compose a folded recording by S3 copies
chunk_join   strategy: read the chunks and join them with ffmpeg (remux, concat, re-encode)
"""
