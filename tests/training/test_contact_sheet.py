"""The contact sheet renders every row through the engine: one row per request, inputs then frames."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pusa.training import contact_sheet


def test_sheet_has_a_row_per_request_with_its_inputs_and_output_frames(tiny_diffusers, tmp_path, monkeypatch):
    monkeypatch.setattr(contact_sheet, "FRAMES_SHOWN", (0, 4, 8))  # the test model's clips are short
    out = contact_sheet.render(str(tiny_diffusers), tmp_path / "sheet.png")
    sheet = np.asarray(Image.open(out))
    from pusa.pipeline import PusaPipeline

    d = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu").defaults
    rows = contact_sheet._rows(d.width, d.height, d.frames)
    cell_w, cell_h = d.width * contact_sheet.SCALE, d.height * contact_sheet.SCALE
    assert sheet.shape[0] == len(rows) * (cell_h + 4) + 24
    assert sheet.shape[1] == contact_sheet.LABEL_W + (2 + 3) * (cell_w + 4)
    first_input = sheet[24:24 + cell_h, contact_sheet.LABEL_W:contact_sheet.LABEL_W + cell_w]
    assert np.array_equal(first_input[::contact_sheet.SCALE, ::contact_sheet.SCALE], rows[0]["images"][0])
    t2v_input = sheet[24 + 4 * (cell_h + 4):24 + 4 * (cell_h + 4) + cell_h, contact_sheet.LABEL_W:][:, :cell_w]
    assert (t2v_input == 255).all()  # t2v has no input picture: the cell stays blank
