"""A trained policy out in the world: its Hub model card and LeRobot's async-inference server opened to it."""
