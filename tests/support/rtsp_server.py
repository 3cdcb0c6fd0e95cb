"""A real RTSP server (GStreamer's gst-rtsp-server) playing a WAV file as Opus over RTP.

Run with Debian's system Python, which has PyGObject (``python3-gi``); scripts/test installs
it with ``gir1.2-gst-rtsp-server-1.0`` and the GStreamer base and good plugins:

    /usr/bin/python3 tests/support/rtsp_server.py PORT MEDIA.wav [VIDEO.ts]

With ``VIDEO.ts`` (MPEG-TS holding H.264 alone) the session carries that video too, as
H.264 over RTP beside the Opus. Serves ``rtsp://127.0.0.1:PORT/room`` (every client from
the start of the file, paced in real time, over UDP or interleaved TCP as the client
asks) until killed. Prints ``listening`` once the port is open.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, media = sys.argv[1], sys.argv[2]
    video = sys.argv[3] if len(sys.argv) > 3 else None
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    launch = (
        f'filesrc location="{media}" ! wavparse ! audioconvert ! audioresample'
        " ! opusenc ! rtpopuspay name=pay0 pt=96"
    )
    if video is not None:
        launch += (
            f' filesrc location="{video}" ! tsdemux ! h264parse'
            " ! rtph264pay name=pay1 pt=97 config-interval=-1"
        )
    factory.set_launch(f"( {launch} )")
    server.get_mount_points().add_factory("/room", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("listening", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
