"""A DES-format archive simulator with injected artifacts and exposure-checker labels (issue 3).

Modules:
- :mod:`.config`     -- the ``[simulate]`` section as a frozen, validated dataclass;
- :mod:`.focalplane` -- DECam CCD placement in focal-plane pixel coordinates;
- :mod:`.exposure`   -- exposure-level draws (band, seeing, sky, exposure-wide artifacts), made
  deterministically from (seed, exposure index) so every CCD task of an exposure agrees;
- :mod:`.sky`        -- sky, GalSim sources, saturation/bleed, cosmic rays, bad columns, edges,
  noise, weight and background model of one CCD;
- :mod:`.artifacts`  -- one injector per exposure-checker class;
- :mod:`.truthlabels`-- truth rows and checker-format reports (with label noise);
- :mod:`.archive`    -- one CCD end to end, and the Spark orchestration;
- :mod:`.gallery`    -- one PNG per class.
"""
