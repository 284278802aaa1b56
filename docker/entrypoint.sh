#!/bin/sh
# Entrypoint of the pharmafl partner and operator images (POSIX sh, runs as the image's
# non-root user).
#
# 1. Secrets: every file Docker mounted under PHARMAFL_SECRETS_DIR (/run/secrets) is copied
#    into PHARMAFL_KEYS_DIR (a tmpfs in compose.yaml) with mode 0600. Compose bind-mounts file
#    secrets with the host file's owner and mode (its `mode:` applies to swarm and to
#    environment-sourced secrets only), and pharmafl refuses key files that group or others
#    can read, so the copy is what makes "0600 inside the container" hold everywhere.
# 2. Work folder: pharmafl writes prepared/ and models/ atomically, as a temporary sibling
#    renamed into place, which needs a writable parent folder. The input folder
#    (PHARMAFL_INPUT_DIR, mounted read-only) therefore appears in the writable work folder
#    (PHARMAFL_WORK_DIR, a volume) as one symbolic link per entry, except prepared/ and
#    models/, which live in the work folder itself. A secret named key.json (the consortium
#    key, partner.toml's default key_file) takes the place of any key.json of the input.
# 3. Runs the command: by default the image's Prefect worker (see CMD in the Dockerfile).
set -eu

secrets_dir=${PHARMAFL_SECRETS_DIR:-/run/secrets}
keys_dir=${PHARMAFL_KEYS_DIR:-/run/pharmafl/keys}
input_dir=${PHARMAFL_INPUT_DIR:-}
work_dir=${PHARMAFL_WORK_DIR:-/data/work}

die() {
  echo "pharmafl-entrypoint: $*" >&2
  exit 2
}

umask 077

if [ -d "$secrets_dir" ]; then
  mkdir -p "$keys_dir" 2>/dev/null || die "cannot create $keys_dir as uid $(id -u); mount a \
tmpfs there owned by that uid (compose.yaml does)."
  chmod 700 "$keys_dir"
  for src in "$secrets_dir"/*; do
    [ -f "$src" ] || continue
    name=$(basename "$src")
    [ -r "$src" ] || die "secret $name is not readable by uid $(id -u). On the host: chown it \
to that uid and chmod 600 it, or build the image with --build-arg PHARMAFL_UID=\$(id -u)."
    mode=$(stat -c %a "$src")
    group_other=${mode#"${mode%??}"}
    if [ "$group_other" != "00" ]; then
      echo "pharmafl-entrypoint: warning: secret $name has mode $mode on the host (group or" \
        "others may read it there); run chmod 600 on the host file." >&2
    fi
    cp "$src" "$keys_dir/.$name.tmp"
    chmod 600 "$keys_dir/.$name.tmp"
    mv -f "$keys_dir/.$name.tmp" "$keys_dir/$name"
  done
fi

if [ -n "$input_dir" ] && [ -d "$input_dir" ]; then
  mkdir -p "$work_dir"
  [ -w "$work_dir" ] || die "work folder $work_dir is not writable by uid $(id -u); mount a \
volume there (compose.yaml does) or a host folder owned by that uid."
  # Links from an earlier start may point at entries that no longer exist: start afresh.
  for link in "$work_dir"/*; do
    if [ -L "$link" ]; then rm -f "$link"; fi
  done
  for src in "$input_dir"/*; do
    [ -e "$src" ] || continue
    name=$(basename "$src")
    case $name in
      prepared | models) continue ;;
    esac
    if [ -e "$work_dir/$name" ]; then
      die "$work_dir/$name exists in the work volume and hides $src of the read-only input; \
remove it from the volume."
    fi
    ln -s "$src" "$work_dir/$name"
  done
  if [ -f "$keys_dir/key.json" ]; then
    ln -sfn "$keys_dir/key.json" "$work_dir/key.json"
  fi
fi

exec "$@"
