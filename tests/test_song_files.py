"""Tests of the files of a separation job (mssjax.song_files): songs found in folders, the file-name template,
and ``python -m mssjax separate``'s choice of stems, folders and re-runs (the "mixture" separator: every stem is
the song, so each file's contents say which stem it holds)."""

import os
import pathlib

import numpy as np
import pytest

from mssjax import TARGETS, audio, song_files
from mssjax.__main__ import main
from mssjax.errors import ParameterError


def _song(path, value):
  path.parent.mkdir(parents=True, exist_ok=True)
  audio.save(path, np.full((2, 11025), value, np.float32))  # 0.25 s at 44.1 kHz
  return path


def _separate(*args, quiet=True):
  return main(["separate", *map(str, args), "--method", "mixture", *(["--quiet"] if quiet else [])])


def _files(folder):
  return sorted(p.relative_to(folder).as_posix() for p in pathlib.Path(folder).rglob("*") if p.is_file())


@pytest.mark.parametrize("template,message", [
    ("{track}/{stm}.{ext}", r"unknown field \{stm\}; valid fields: \{track\}, \{stem\}, \{ext\}, \{folder\}"),
    ("{track}/{0}.{ext}", r"unknown field \{0\}"),
    ("{track}.{ext}", r"must hold \{stem\}: without it the stems of a song would overwrite each other"),
    ("{stem}.{ext}", r"must hold \{track\}: without it the songs would overwrite each other"),
    ("/tmp/{track}/{stem}.{ext}", "must be a path relative to the output folder"),
    ("../{track}/{stem}.{ext}", r"must not hold '\.\.'"),
    ("{track}/../../{stem}.{ext}", r"must not hold '\.\.'"),
    ("{track:>9}/{stem}.{ext}", r"the field \{track\} takes no format spec or conversion"),
    ("{track/{stem}.{ext}", "is not a valid template"),
    ("", "must be a template such as"),
])
def test_bad_templates_are_refused(template, message):
  with pytest.raises(ParameterError, match=message):
    song_files.check_filename(template)


def test_a_bad_template_is_one_line_before_any_work(tmp_path, capsys):
  assert _separate(_song(tmp_path / "a.wav", 0.1), "-o", tmp_path / "out", "--filename", "{track}.{ext}") == 2
  err = capsys.readouterr().err
  assert err.startswith("error: filename='{track}.{ext}' must hold {stem}") and err.count("\n") == 1
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("template,folder,expected,own", [
    ("{track}/{stem}.{ext}", "", "song/vocals.wav", True),
    ("{track}/{stem}.{ext}", "a/b", "a/b/song/vocals.wav", True),
    ("{stem}/{track}.{ext}", "a", "a/vocals/song.wav", False),
    ("{track}_{stem}.{ext}", "", "song_vocals.wav", False),
    ("{stem}/{folder}/{track}.{ext}", "a/b", "vocals/a/b/song.wav", False),
    ("{stem}/{folder}/{track}.{ext}", "", "vocals/song.wav", False),
    ("{folder}/x/{track}/{track}-{stem}.{ext}", "a", "a/x/song/song-vocals.wav", True),
    ("{track}/{folder}_{stem}.{ext}", "a", "song/a_vocals.wav", False),  # {folder} outside the folder part
])
def test_template_paths(tmp_path, template, folder, expected, own):
  output = song_files.song_output(template, tmp_path, song_files.Song("x.wav", folder, "song"), ["vocals", "drums"])
  assert output.files["vocals"] == tmp_path / expected
  assert output.folder == ((tmp_path / expected).parent if own else None)


def test_folders_are_searched_for_audio_files(tmp_path):
  for name in ("b.wav", "A.FLAC", "sub/c.mp3", "sub/deeper/d.stem.mp4", "notes.txt", ".hidden.wav", ".git/e.wav",
               "out/stem.wav", "other/a.wav"):
    (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "in" / name).write_bytes(b"")
  found = song_files.find_songs([tmp_path / "in", tmp_path / "in" / "b.wav"], recursive=True,
                                exclude=tmp_path / "in" / "out")
  assert [(pathlib.Path(s.path).relative_to(tmp_path / "in").as_posix(), s.folder, s.track) for s in found] == [
      ("A.FLAC", "", "A"), ("b.wav", "", "b"), ("other/a.wav", "other", "a"), ("sub/c.mp3", "sub", "c"),
      ("sub/deeper/d.stem.mp4", "sub/deeper", "d"), ("b.wav", "", "b (2)")]
  assert [s.track for s in song_files.find_songs([tmp_path / "in"])] == ["A", "b"]
  with pytest.raises(ParameterError, match="in: is the output folder too"):
    song_files.find_songs([tmp_path / "in"], recursive=True, exclude=tmp_path / "in")
  (tmp_path / "in" / "sub" / "c.mp3").unlink()  # sub/ now holds only a subfolder's song
  with pytest.raises(ParameterError, match="sub: holds no audio file .*; --recursive searches its subfolders"):
    song_files.find_songs([tmp_path / "in" / "sub"])


def test_a_custom_template_writes_its_files(tmp_path, capsys):
  _song(tmp_path / "a.wav", 0.1)
  _song(tmp_path / "b.wav", 0.2)
  out = tmp_path / "out"
  assert _separate(tmp_path / "a.wav", tmp_path / "b.wav", "-o", out, "--filename", "{stem}/{track}.{ext}") == 0
  assert _files(out) == sorted(f"{t}/{s}.wav" for t in TARGETS for s in "ab")  # no temporary file left
  assert capsys.readouterr().out.splitlines() == [str(out / t / f"{s}.wav") for s in "ab" for t in TARGETS]
  np.testing.assert_allclose(audio.load(out / "bass" / "b.wav"), 0.2, atol=1e-6)


def test_stems_and_two_stems_write_exactly_the_files_asked(tmp_path, capsys):
  song = _song(tmp_path / "song.wav", 0.1)
  assert _separate(song, "-o", tmp_path / "some", "--stems", "vocals,drums") == 0
  assert _files(tmp_path / "some") == ["song/drums.wav", "song/vocals.wav"]
  assert _separate(song, "-o", tmp_path / "two", "--two-stems", "vocals") == 0
  assert _files(tmp_path / "two") == ["song/no_vocals.wav", "song/vocals.wav"]
  # no_vocals is the sum of the other estimates: three copies of the song here (the mixture minus
  # vocals would be silence)
  np.testing.assert_allclose(audio.load(tmp_path / "two" / "song" / "no_vocals.wav"), 0.3, atol=1e-6)
  capsys.readouterr()
  for flags, message in ((["--stems", "vocals,piano"], "stems='vocals,piano': 'piano' is not a target of the "
                                                       "separator; valid targets: vocals, drums, bass, other"),
                         (["--two-stems", "voice"], "two_stems='voice' is not a target of the separator; valid "
                                                    "targets: vocals, drums, bass, other")):
    assert _separate(song, "-o", tmp_path / "bad", *flags) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
  assert not (tmp_path / "bad").exists()


def test_a_folder_keeps_its_structure_and_a_rerun_skips_finished_songs(tmp_path, capsys):
  _song(tmp_path / "in" / "a.wav", 0.1)
  _song(tmp_path / "in" / "sub" / "b.wav", 0.2)
  out = tmp_path / "out"
  assert _separate(tmp_path / "in", "-o", out) == 0
  assert _files(out) == [f"a/{t}.wav" for t in sorted(TARGETS)]  # not recursive: the top folder only
  capsys.readouterr()
  assert _separate(tmp_path / "in", "-o", out, "--recursive", quiet=False) == 0
  assert _files(out) == sorted([f"a/{t}.wav" for t in TARGETS] + [f"sub/b/{t}.wav" for t in TARGETS])
  captured = capsys.readouterr()
  assert captured.out.splitlines() == [str(out / "sub" / "b")]
  assert "skipped 1 finished song (--overwrite redoes them)" in captured.err
  assert "1/1 songs, 0:00:00/0:00:00 of audio" in captured.err  # the bar's label, once the song is done
  np.testing.assert_allclose(audio.load(out / "sub" / "b" / "drums.wav"), 0.2, atol=1e-6)

  stems = sorted(out.rglob("*.wav"))
  for path in stems:
    os.utime(path, ns=(10**9, 10**9))
  (out / "sub" / "b" / "bass.wav").unlink()  # a song with a stem missing is done again
  assert _separate(tmp_path / "in", "-o", out, "--recursive") == 0
  assert "skipped 1 finished song " in capsys.readouterr().err
  assert {p.relative_to(out).as_posix() for p in stems if p.stat().st_mtime_ns != 10**9} == \
      {f"sub/b/{t}.wav" for t in TARGETS}  # a/ untouched, sub/b/ written anew (bass.wav again)
  for path in stems:
    os.utime(path, ns=(10**9, 10**9))
  assert _separate(tmp_path / "in", "-o", out, "--recursive", "--overwrite") == 0
  assert "skipped" not in capsys.readouterr().err
  assert all(p.stat().st_mtime_ns != 10**9 for p in stems)
