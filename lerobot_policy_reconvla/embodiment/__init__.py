"""What the robot is: ALOHA's joints, their order and the safety cap, shared by the real robot, the sim and
the data."""
